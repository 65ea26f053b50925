"""Plan -> Python source: one torch.nn.Module per open diagram, straight-line and deterministic.

The generated file imports only torch.  Constants (coupling tensors with the
normalisation folded in) are float64 buffers built from their nonzero entries
and cast to the input's dtype in forward, so `.double()` gives full float64
precision and `.to(device)` moves everything.  Weights are flat parameters in
e3nn's order (docs/language.md section 6), sliced per contraction.
"""
from __future__ import annotations

import re

import numpy as np

from .. import names as pynames
from ..version import __version__
from .plan import Contraction, Plan, VertexPlan

METADATA = pynames.CLASS_ATTRIBUTES   # e3nn's names; see _ModuleWriter.metadata
# The calling convention of graph diagrams (docs/language.md section 9) fixes these argument names.
GRAPH_ARGUMENTS = pynames.GRAPH_ARGUMENTS


def module_names(plan: Plan) -> pynames.ModuleNames:
    """The Python names of the class generated for a plan (names.ModuleNames): the diagram as
    written gives them, the wires a graph rewrite added come after."""
    d = plan.diagram
    weighted = [v for v in plan.vertices if v.weight_numel]
    names = pynames.ModuleNames(d.name, list(d.wires), d.is_graph,
                                external=[v.weight_owner or v.outputs[0] for v in weighted if v.external],
                                internal=[v.weight_owner or v.outputs[0] for v in weighted if not v.external])
    names.add_wires(list(plan.emitted.wires))
    return names


def _comment_lines(text: str, width: int = 96) -> list[str]:
    """Free text as `#` comment lines of at most about `width` characters, broken at spaces."""
    lines = _wrapped(pynames.comment(text).split(" "), width - 2)
    return ["# " + line[4:] if i == 0 else "#   " + line[4:] for i, line in enumerate(lines)]


def _wrapped(items: list[str], width: int = 96) -> list[str]:
    """Items joined by spaces into lines of at most `width` characters (one item may be longer),
    each indented by four spaces."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + 1 + len(item) > width:
            lines.append("    " + line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    return lines + (["    " + line] if line else [])


# The index letters of plan._contraction's equations besides each input's channel and component
# letters (z, the rows, is named by the vertex's domain).
_LETTERS = {"p": "path", "q": "(path, output component)", "o": "output component", "w": "output channel"}
_IDENTIFIER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)")


def _contiguous(index: np.ndarray) -> bool:
    return len(index) > 0 and bool(np.all(np.diff(index) == 1))


class _ModuleWriter:
    def __init__(self, plan: Plan):
        self.plan = plan
        d = plan.emitted      # a graph diagram after the planner's rewrites; otherwise as written
        self.d = d
        self.names = module_names(plan)
        # wire -> the local holding its value in forward: the argument itself, or for an input of a
        # plain diagram its [rows, dim] view, which gets a name of its own (no name is bound twice).
        self.var = dict(self.names.wires)
        self.weight_args = {v.node: self.names.weight_arguments[v.weight_owner or v.outputs[0]]
                            for v in plan.vertices if v.external and v.weight_numel}
        self.weight_params = {v.node: self.names.weight_parameters[v.weight_owner or v.outputs[0]]
                              for v in plan.vertices if not v.external and v.weight_numel}
        self.weight_values = dict(self.weight_args)   # vertex -> the local of its external weights
        self.ends: dict[str, str] = {}      # graph diagrams: "sender" / "receiver" -> the index variable
        self.init: list[str] = []
        self.body: list[str] = []
        # Single assignment: every local of forward is bound once (bind refuses a second time), so a
        # name stands for one value.  A value's key is its operation with each operand replaced by that
        # operand's value number, and equal constants are one buffer (constant_key), so an operation
        # that was computed already (the same y1 (x) y2 coupling for several paths, the same y @ K for
        # two vertices with one operator) is found by its key and reused, never computed twice.
        self.value_ids: dict[str, int] = {}
        self.values: dict[tuple, str | tuple[str, ...]] = {}
        self.constants: dict[tuple, str] = {}
        self.legends: set[tuple[str, str]] = set()    # (vertex, equation) whose letters were explained

    def class_name(self) -> str:
        return self.names.class_name

    def write(self) -> str:
        if self.d.is_graph:
            return self.write_graph()
        d, plan = self.d, self.plan
        dims = {w: d.irreps(w).dim for w in d.wires}
        ext = [v for v in plan.vertices if v.external and v.weight_numel]
        args = [self.names.wires[w] for w in d.inputs] + [self.weights_argument(v) for v in ext]
        first = self.var[d.inputs[0]]
        self.body.append(f"batch = {first}.shape[:-1]")
        self.body += self.argument_checks([(self.var[w], dims[w], str(d.irreps(w))) for w in d.inputs] +
                                          [(self.weights_argument(v), v.weight_numel, None) for v in ext], first)
        for name in ["batch", "dtype"] + args:
            self.bind(name)
        for w in d.inputs:
            self.var[w] = self.let(self.names.fixed(f"{self.var[w]}_rows"), f"{self.var[w]}.reshape(-1, {dims[w]})",
                                   fixed=True)
        self.body.append(f"dtype = {first}.dtype")
        for v in ext:
            arg = self.weights_argument(v)
            self.weight_values[v.node] = self.let(self.names.fixed(f"{arg}_rows"),
                                                  f"{arg}.reshape(-1, {v.weight_numel}).to(dtype)", fixed=True)
        for v in plan.vertices:
            self.vertex(v)
        outs = [f"{self.var[w]}.reshape(batch + ({dims[w]},))" for w in d.outputs]
        self.body.append("return " + (outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"))
        return self.render_class(args)

    def write_graph(self) -> str:
        """forward(*inputs, *external_weights, edge_index[, *, num_nodes]) of docs/language.md section 9: node
        tensors [V, dim], edge tensors [E, dim], gather as index_select, scatter as index_add."""
        d, plan = self.d, self.plan
        ext = [v for v in plan.vertices if v.external and v.weight_numel]
        node_inputs = [w for w in d.inputs if d.domain(w) == "node"]
        uses_nodes = bool(node_inputs) or any(d.domain(w) == "node" for w in d.wires)
        args = [self.names.wires[w] for w in d.inputs] + [self.weights_argument(v) for v in ext] + ["edge_index"]
        if not node_inputs and uses_nodes:
            args += ["*", "num_nodes"]
        num_edges = self.names.fixed("num_edges")
        rows = {"node": "num_nodes", "edge": num_edges}
        for name in ["dtype", num_edges] + [a for a in args if a != "*"] + (["num_nodes"] if node_inputs else []):
            self.bind(name)
        self.body.append(f"dtype = {self.var[d.inputs[0]]}.dtype")
        if node_inputs:
            self.body.append(f"num_nodes = {self.var[node_inputs[0]]}.shape[0]")
        self.body.append(f"_check_edge_index(edge_index, {'num_nodes' if uses_nodes else 'None'})")
        self.body.append(f"{num_edges} = edge_index.shape[1]")
        for w in d.inputs:
            domain = d.domain(w)
            self.body.append(f"_check_rows({w!r}, {self.var[w]}, {rows[domain]}, {d.irreps(w).dim}, {domain!r})")
        for v in ext:
            arg = self.weights_argument(v)
            self.body.append(f"_check_rows({arg!r}, {arg}, {rows[v.domain]}, {v.weight_numel}, {v.domain!r})")
            self.weight_values[v.node] = self.let(self.names.fixed(f"{arg}_rows"), f"{arg}.to(dtype)", fixed=True)
        ends = self.ends
        for end in ("sender", "receiver"):
            if any(v.endpoint == end for v in plan.vertices):
                ends[end] = self.let(self.names.fixed(end), f"edge_index[{0 if end == 'sender' else 1}]", fixed=True)
        for v in plan.vertices:
            if v.absorbed:
                continue        # the fuse before it wrote into the nodes (plan.VertexPlan.scatter_into)
            if v.kind == "gather":
                self.gather(v)
            elif v.kind == "scatter":
                self.body += ["", f"# line {v.line}: {self.stem(v.outputs[0])} = scatter({v.inputs[0]}, {v.endpoint}): "
                              f"each edge's row added into its {v.endpoint}"]
                src = self.var[v.inputs[0]]
                self.let(self.var[v.outputs[0]], f"_scatter_add({src}, {ends[v.endpoint]}, num_nodes)", fixed=True)
            else:
                self.vertex(v)
        outs = [self.var[w] for w in d.outputs]
        self.body.append("return " + (outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"))
        return self.render_class(args)

    def gather(self, v: VertexPlan) -> None:
        self.body += ["", f"# line {v.line}: {self.stem(v.outputs[0])} = gather({v.inputs[0]}, {v.endpoint}): "
                      f"each edge reads its {v.endpoint}'s row"]
        self.let(self.var[v.outputs[0]], f"{self.var[v.inputs[0]]}.index_select(0, {self.ends[v.endpoint]})",
                 fixed=True)

    def weights_argument(self, v: VertexPlan) -> str:
        """The forward argument of a vertex's external weights."""
        return self.weight_args[v.node]

    def weights_arg(self, v: VertexPlan) -> str:
        """The local holding those weights in forward ([rows, numel], the input's dtype; the Triton
        backend's writer passes it to its kernels)."""
        return self.weight_values[v.node]

    # -- single assignment ---------------------------------------------------

    def bind(self, name: str) -> None:
        """Record that forward binds `name`; a second binding is a bug in this file."""
        if name in self.value_ids:
            raise AssertionError(f"fusionlang internal error: `{name}` bound twice in generated forward")
        self.value_ids[name] = len(self.value_ids)

    def value_key(self, expr: str) -> tuple:
        """The operation with each operand that is a bound local replaced by its value number."""
        return tuple(self.value_ids.get(piece, piece) for piece in _IDENTIFIER.split(expr))

    def let(self, stem: str, expr: str, comment: str = "", fixed: bool = False) -> str:
        """A local holding expr: `<stem>_<k> = expr`, or the local that holds that value already.  With
        fixed, `stem` is the name itself (an output wire's, `sender`): it is bound, to the known local
        where the value was computed already."""
        key = self.value_key(expr)
        known = self.values.get(key)
        if isinstance(known, str) and not fixed:
            return known
        name = stem if fixed else self.names.fresh(stem)
        self.bind(name)
        self.values.setdefault(key, name)
        statement = f"{name} = {known if isinstance(known, str) else expr}"
        if comment and len(statement) + len(comment) > 92:    # a long comment goes above, wrapped
            self.body += _comment_lines(comment)
        self.body.append(statement + (f"  # {comment}" if comment and len(statement) + len(comment) <= 92 else ""))
        return name

    def argument_checks(self, arguments: list[tuple[str, int, str | None]], first: str) -> list[str]:
        """One _check_argument call per forward argument (name, last dimension, irreps or None for
        external weights): each must have the batch shape of `first` and its own last dimension."""
        lit = pynames.string_literal
        return [f"_check_argument({lit(self.class_name())}, {lit(name)}, {name}, {dim}, batch, {lit(first)}, "
                f"{lit(irreps) if irreps is not None else None})" for name, dim, irreps in arguments]

    def metadata(self) -> list[str]:
        """e3nn's attributes, as plain values: irreps_in (one string per input), irreps_out (a string,
        or a tuple for several outputs), weight_numel (external weights: an int, or a tuple with one
        entry per external-weight argument)."""
        d, lit = self.d, pynames.string_literal
        ins = [lit(str(d.irreps(w))) for w in d.inputs]
        outs = [lit(str(d.irreps(w))) for w in d.outputs]
        ext = [str(v.weight_numel) for v in self.plan.vertices if v.external and v.weight_numel]
        return ["irreps_in = (" + ", ".join(ins) + ("," if len(ins) == 1 else "") + ")",
                "irreps_out = " + (outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"),
                "weight_numel = " + (ext[0] if len(ext) == 1 else "(" + ", ".join(ext) + ")" if ext else "0")]

    def render_class(self, args) -> str:
        d, plan = self.d, self.plan
        doc = [f"Diagram `{d.name}` (group {d.group_name}), compiled by fusionlang.", ""]
        rows = {"node": "V", "edge": "E"}
        for kind, wires in (("input", d.inputs), ("output", d.outputs)):
            for w in wires:
                where = f" per {d.domain(w)}, [{rows[d.domain(w)]}, {d.irreps(w).dim}]" if d.is_graph else \
                    f"  (dim {d.irreps(w).dim})"
                doc.append(f"    {kind:<6} {self._wire_text(w)} : {d.irreps(w)}{where}")
        for v in plan.vertices:
            if v.external and v.weight_numel:
                lead = rows[v.domain] if d.is_graph else "..."
                doc.append(f"    input  {self.weights_argument(v)} : [{lead}, {v.weight_numel}] external weights of "
                           f"{self._wire_text(v.outputs[0])}")
        if d.is_graph:
            doc.append("    input  edge_index : [2, E] integers, row 0 each edge's sender, row 1 its receiver")
        for v in plan.vertices:
            if not v.external and v.weight_numel:
                owner = v.weight_owner or v.outputs[0]
                doc.append(f"    weight {self.weight_params[v.node]} : [{v.weight_numel}] internal weights of "
                           f"{self._wire_text(owner)}")
        doc.append(f"    paths: {plan.n_paths}, internal weights: {plan.weight_numel}")
        doc.append("    ")
        lines = [f"class {self.class_name()}(torch.nn.Module):", "    " + pynames.docstring(doc), "",
                 *["    " + line for line in self.metadata()], "",
                 "    def __init__(self):", "        super().__init__()"]
        lines += ["        " + line for statement in self.init for line in statement.split("\n")]
        lines += ["", f"    def forward(self, {', '.join(args)}):"]
        lines += ["        " + line if line else "" for line in self.body]
        return "\n".join(lines) + "\n"

    def stem(self, wire: str) -> str:
        """The start of the names of a wire's buffers and temporaries: its Python name."""
        return self.names.wires[wire]

    def _wire_text(self, wire: str) -> str:
        """A wire as the docstring names it: its Python name, and the diagram's where they differ."""
        python = self.names.wires[wire]
        return python if python == wire else f"{python} (wire `{wire}`)"

    # -- pieces --------------------------------------------------------------

    def buffer(self, stem: str, value: np.ndarray, what: str) -> str:
        """A float64 constant as a buffer, written as a table (_table, see HELPERS) under a comment
        saying what it is; an equal constant registered before is that buffer."""
        key = ("float64", value.shape, np.asarray(value, dtype=np.float64).tobytes())
        if key not in self.constants:
            name = self.names.fresh(stem)
            flat = value.reshape(-1)
            nz = np.flatnonzero(flat)
            distinct = list(dict.fromkeys(float(x) for x in flat[nz]))
            slot = {x: k for k, x in enumerate(distinct)}
            entries = [f"{int(i)}:{slot[float(flat[i])]}" for i in nz]
            self.init += _comment_lines(f"{name}: {what}, {list(value.shape)}, {len(nz)} nonzero entries, "
                                        f"{len(distinct)} distinct values")
            # One entry of self.init per statement, its lines joined by newlines (render_class indents them).
            self.init.append("\n".join([f"self.register_buffer({name!r}, _table({tuple(value.shape)!r}, [",
                                         *_wrapped([repr(x) + "," for x in distinct]), '], """',
                                         *_wrapped(entries), '"""))']))
            self.constants[key] = f"self.{name}"
        return self.constants[key]

    def weight_selection(self, out: str, index: np.ndarray) -> str:
        """The flat weight positions as a slice where they are consecutive, else as an index buffer."""
        idx = index.reshape(-1)
        return f"{int(idx[0])}:{int(idx[-1]) + 1}" if _contiguous(idx) else self.index_buffer(f"{out}_index", idx)

    def index_buffer(self, stem: str, index: np.ndarray) -> str:
        key = ("long", index.shape, np.asarray(index, dtype=np.int64).tobytes())
        if key not in self.constants:
            name = self.names.fresh(stem)
            self.init.append("\n".join([f"self.register_buffer({name!r}, torch.tensor([",
                                         *_wrapped([f"{int(i)}," for i in index]),
                                         "], dtype=torch.long), persistent=False)"]))
            self.constants[key] = f"self.{name}"
        return self.constants[key]

    def wire_terms(self, wire: str) -> list[str]:
        """One name per term of a wire, from a single split (cut once per wire and reused)."""
        return self._split(self.var[wire], [t.dim for t in self.d.irreps(wire)], 1, f"{self.names.wires[wire]}_term")

    def segment(self, seg, irreps) -> str:
        src = self.var[seg.wire]
        whole = seg.start == 0 and seg.end == irreps.dim
        if whole and (len(seg.terms) == 1 or seg.mul == 1):   # [z, mul * dim] is then [z, mul, dim]
            expr = f"{src}.reshape(-1, {seg.mul}, {seg.dim})"
        elif len(seg.terms) == 1:
            expr = f"{self.wire_terms(seg.wire)[seg.terms[0]]}.reshape(-1, {seg.mul}, {seg.dim})"
        elif seg.mul == 1:
            expr = f"{src}[:, {seg.start}:{seg.end}].reshape(-1, 1, {seg.dim})"
        else:
            terms = self.wire_terms(seg.wire)
            parts = [f"{terms[t]}.reshape(-1, {seg.mul}, {irreps[t].irrep.dim})" for t in seg.terms]
            expr = f"torch.cat([{', '.join(parts)}], dim=2)"
        return self.let(f"{self.names.wires[seg.wire]}_seg", expr)

    def vertex(self, v: VertexPlan) -> None:
        out = v.outputs[0]
        opts = f" [weights={v.mode}{', external' if v.external else ''}{', symmetric' if v.symmetric_bases else ''}]" \
            if v.kind == "fuse" else (" [external]" if v.external else "")
        opts = " [paths=separate]" if v.per_path else opts
        count = (f"{len(v.paths)} symmetric basis functions ({v.unreduced_paths} unreduced paths)" if v.symmetric_bases
                 else f"{len(v.paths)} paths")
        self.body += ["", *_comment_lines(
            f"line {v.line}: {self.stem(out)} = {v.kind}({', '.join(v.inputs)}){opts}: {count}, " +
            (f"{len(v.operator_blocks)} operator blocks" if v.operator_blocks
             else "symmetric pair form" if v.symmetric_pairs
             else f"{len(v.contractions)} contractions"))]
        for g in self.plan.vertices:      # gathers and scatters this vertex performs (plan.plan_graph)
            if g.absorbed_by == v.node:
                self.body.append(f"# and {g.outputs[0]} = {g.kind}({g.inputs[0]}, {g.endpoint}) with it: "
                                 + ("the transposed terms are gathered" if g.kind == "gather" else
                                    "the results are added into the nodes" + (", the weights applied there"
                                                                              if v.weights_on_nodes else "")))
        weights = None
        if v.weight_numel:
            if v.external:
                weights = self.weights_arg(v)
            else:
                pname = self.weight_params[v.node]
                self.init.append(f"self.{pname} = torch.nn.Parameter(torch.randn({v.weight_numel}))")
                weights = self.let("w", f"self.{pname}.to(dtype)")
        if v.operator_blocks:
            self.operator_vertex(v, weights)
            return
        if v.symmetric_pairs is not None:
            self._assign_vertex_output(v, self.symmetric_pair_pieces(v, weights))
            return
        partial: dict[int, list[str]] = {}
        for c in v.contractions:
            result = self.split_contraction(v, c, weights) if v.weights_on_nodes else self.contraction(v, c, weights)
            if not c.out_terms:
                partial.setdefault(c.out_term, []).append(result)
                continue
            for k, term in enumerate(c.out_terms):   # one contraction served several output terms
                lo, hi = c.out_offsets[k], c.out_offsets[k + 1]
                partial.setdefault(term, []).append(result if len(c.out_terms) == 1 else f"{result}[:, :, {lo}:{hi}]")
        out_irreps = v.out_irreps
        pieces = []
        for term_index, term in enumerate(out_irreps):
            terms = partial[term_index]
            expr = " + ".join(terms)
            pieces.append(f"({expr}).reshape(-1, {term.dim})" if len(terms) > 1 else f"{expr}.reshape(-1, {term.dim})")
        self._assign_vertex_output(v, pieces)

    def _assign_vertex_output(self, v: VertexPlan, pieces: list[str]) -> None:
        """The output terms [z, dim] into the output wire, or added into the nodes (scatter_into)."""
        out = v.outputs[0]
        if v.weights_on_nodes:
            self._assign_output(self.var[v.scatter_into], pieces)
        elif v.scatter_into:
            # Each output term is added into the nodes on its own: the edge message is never assembled.
            end = self.ends[self._absorbed_scatter(v).endpoint]
            self._assign_output(self.var[v.scatter_into], [f"_scatter_add({p}, {end}, num_nodes)" for p in pieces])
        else:
            self._assign_output(self.var[out], pieces)

    def symmetric_pair_pieces(self, v: VertexPlan, weights: str) -> list[str]:
        """The symmetric pair form (plan.SymmetricPairs): pair products of one channel's components,
        then one batched GEMM per input term with the weights folded into its constant."""
        sp, out, wire = v.symmetric_pairs, self.stem(v.outputs[0]), v.inputs[0]
        mul, D, O = sp.mul, sp.dim, sp.out_dim
        terms = self.wire_terms(wire)
        dims = [t.irrep.dim for t in self.d.irreps(wire)]
        parts = [f"{t}.reshape(-1, {mul}, {d})" for t, d in zip(terms, dims)]
        joined = parts[0] if len(parts) == 1 else f"torch.cat([{', '.join(parts)}], dim=2)"
        # [mul, D, z]: channels outermost (the batched GEMMs' batch), the nodes innermost.
        xt = self.let(f"{self.stem(wire)}_channels", f"{joined}.permute(1, 2, 0).contiguous()")
        x_terms = self._split(xt, dims, 1, f"{self.stem(wire)}_channel_term")
        products = []
        for u in range(len(dims)):   # x_i x_j for j in term u and every i before its end
            j1 = sp.starts[u + 1]
            left = xt if j1 == D else f"{xt}[:, :{j1}]"
            products.append(self.let(f"{out}_pairs",
                                     f"({left}[:, :, None] * {x_terms[u]}[:, None]).reshape({mul}, {j1 * dims[u]}, -1)"))
        w = self.let(f"{out}_w", f"{weights}.reshape({sp.rank}, {mul})")
        acc = None
        for k0, k1, prefix, const in sp.blocks:
            t = sp.starts.index(k0)
            width = const.shape[0] // prefix
            K = self.buffer(f"{out}_sym", const, "symmetric pair form: the bases of one block, weights still apart")
            kw = self.let(f"{out}_kw", f"({K}.to(dtype) @ {w}).t().contiguous().reshape({mul}, {width}, {prefix})")
            g = None
            nonzero = const.reshape(width, prefix, -1).any(axis=(0, 2))
            for u in range(t + 1):   # the pair slots of the terms up to t
                s0, s1 = sp.slot_starts[u], sp.slot_starts[u + 1]
                if not nonzero[s0:s1].any():
                    continue
                op = kw if (s0, s1) == (0, prefix) else f"{kw}[:, :, {s0}:{s1}]"
                g = self.let(f"{out}_g", f"torch.bmm({op}, {products[u]})" if g is None
                             else f"torch.baddbmm({g}, {op}, {products[u]})")
            # times the third factor x_k (k in term t), summed
            part = self.let(f"{out}_part", f"({g}.reshape({mul}, {k1 - k0}, {O}, -1) * {x_terms[t]}[:, :, None]).sum(1)")
            acc = part if acc is None else self.let(f"{out}_acc", f"{acc} + {part}")
        pieces, o = [], 0
        for term in v.out_irreps:   # [mul, O, z] -> each term [z, mul * dim] (mul_ir)
            d = term.irrep.dim
            rows = acc if (o, d) == (0, O) else f"{acc}[:, {o}:{o + d}]"
            pieces.append(f"{rows}.permute(2, 0, 1).reshape(-1, {term.dim})")
            o += d
        return pieces

    def _absorbed_scatter(self, v: VertexPlan) -> VertexPlan:
        return next(s for s in self.plan.vertices if s.kind == "scatter" and s.outputs[0] == v.scatter_into)

    def _assign_output(self, out: str, pieces: list[str]) -> None:
        """The wire's own name bound to its value: one piece, or the pieces concatenated (one per line)."""
        expr = pieces[0] if len(pieces) == 1 else f"torch.cat([{', '.join(pieces)}], dim=1)"
        self.let(out, expr, fixed=True)
        if len(pieces) > 1 and self.body[-1] == f"{out} = {expr}":
            self.body[-1:] = [f"{out} = torch.cat([", *[f"    {p}," for p in pieces], "], dim=1)"]

    def operator_vertex(self, v: VertexPlan, weights: str) -> None:
        """The operator form (plan.OperatorBlock): per block one GEMM with the second input, the
        weights applied to the transposed first input, and one batched GEMM into the accumulator."""
        out, x, y = self.stem(v.outputs[0]), self.stem(v.inputs[0]), self.var[v.inputs[1]]
        # Terms and output rows are cut with split, not slices: a slice's gradient is a zero tensor
        # of the whole input plus a copy, split's is one concatenation.
        x_terms = self.wire_terms(v.gathered_from or v.inputs[0])
        if v.gathered_from:     # plan.VertexPlan.gathered_from: transpose on the nodes, then gather
            gather = next(g for g in self.plan.vertices if g.absorbed_by == v.node and g.kind == "gather")
            end = self.ends[gather.endpoint]
        transposed: dict[int, str] = {}
        acc: dict[int, str] = {}
        external_parts = None
        for blk in v.operator_blocks:
            og = v.output_groups[blk.group]
            rows, q = blk.operator.shape[1:]
            u, d = blk.mul, blk.dim
            if blk.term not in transposed:   # [z, i, u]: channels innermost
                view = x_terms[blk.term]
                node_t = self.let(f"{self.stem(v.gathered_from)}_t" if v.gathered_from else f"{x}_t",
                                  f"{view}.reshape(-1, {u}, {d}).transpose(1, 2).contiguous()" if d > 1
                                  else f"{view}.reshape(-1, 1, {u})")
                transposed[blk.term] = self.let(f"{x}_t", f"{node_t}.index_select(0, {end})") if v.gathered_from \
                    else node_t
            xt = transposed[blk.term]
            op = self.buffer(f"{out}_op", blk.operator.reshape(blk.operator.shape[0], rows * q),
                             f"operator form, input term {blk.term}: K[j, (o, q)], j the component of "
                             f"`{self.stem(v.inputs[1])}`, o the output's, q (path, component)")
            z = self.let(f"{out}_z", f"({y} @ {op}.to(dtype)).reshape(-1, {rows}, {q})")
            n = len(blk.paths)
            if v.mode == "uvu" and v.external and external_parts is None:
                external_parts = self._external_parts(v, weights)
            sel = None if external_parts else self.weight_selection(out, blk.weight_index)
            if v.mode == "uvu":
                # Shared weights are expanded over the components (a view) so that their gradient is a
                # sum over the batch axis alone: summing over batch and components at once is slow.
                w = (f"{external_parts[blk.term, blk.group]}.reshape(-1, {n}, 1, {u})" if external_parts else
                     f"{weights}[:, {sel}].reshape(-1, {n}, 1, {u})") if v.external else \
                    f"{weights}[{sel}].reshape({n}, 1, {u})" + (f".expand({n}, {d}, {u})" if d > 1 else "")
                xw = self.let(f"{out}_xw", f"({xt}[:, None] * {w}).reshape(-1, {q}, {u})")
            else:
                w = f"{weights}[{sel}].reshape({u}, {n * og.mul})"
                xw = self.let(f"{out}_xw", f"({xt}.reshape(-1, {u}) @ {w}).reshape(-1, {q}, {og.mul})")
            paths = ", ".join(_path_text(self.d, v, k) for k in blk.paths[:4]) + (" ..." if n > 4 else "")
            # Each block adds into a new accumulator (baddbmm of the previous one): no name is rebound.
            acc[blk.group] = self.let(f"{out}_acc", f"torch.baddbmm({acc[blk.group]}, {z}, {xw})" if blk.group in acc
                                      else f"torch.bmm({z}, {xw})", comment=paths)
        if v.scatter_into:
            # The accumulators [E, rows, channels] are added into the nodes as they are; the
            # transposes and the concatenation below then run on V rows instead of E.
            end = self.ends[self._absorbed_scatter(v).endpoint]
            for g in list(acc):
                acc[g] = self.let(f"{self.stem(v.scatter_into)}_acc", f"_scatter_add({acc[g]}, {end}, num_nodes)")
            out = self.stem(v.scatter_into)
        rows: dict[int, str] = {}
        for g, og in enumerate(v.output_groups):
            sizes = [b - a for a, b in zip(og.offsets, og.offsets[1:])]
            rows.update(zip(og.terms, self._split(acc[g], sizes, 1, f"{out}_rows")))
        self._assign_output(self.var[v.scatter_into or v.outputs[0]],
                            [f"{rows[k]}.transpose(1, 2).reshape(-1, {term.dim})" for k, term in enumerate(v.out_irreps)])

    def _external_parts(self, v: VertexPlan, weights: str) -> dict:
        """Per-row weights cut into the operator blocks' pieces with one split, where the blocks'
        weights are consecutive runs that tile the row in order (else {}): the gradient of a split
        is one concatenation, that of each slice a zero tensor of the whole row plus a copy."""
        runs = []
        for blk in v.operator_blocks:
            idx = blk.weight_index.reshape(-1)
            if not _contiguous(idx):
                return {}
            runs.append((int(idx[0]), int(idx[-1]) + 1, (blk.term, blk.group)))
        runs.sort()
        if runs[0][0] != 0 or runs[-1][1] != v.weight_numel or any(a[1] != b[0] for a, b in zip(runs, runs[1:])):
            return {}
        names = self._split(weights, [end - start for start, end, _ in runs], 1, f"{self.weights_argument(v)}_part")
        return {key: name for (_, _, key), name in zip(runs, names)}

    def _split(self, tensor: str, sizes: list[int], dim: int, stem: str) -> list[str]:
        """Names for tensor.split(sizes, dim) (the tensor itself when there is one piece)."""
        if len(sizes) == 1:
            return [tensor]
        expr = f"{tensor}.split({tuple(sizes)!r}, dim={dim})"
        key = self.value_key(expr)
        if key not in self.values:      # one operation, several values
            names = tuple(self.names.fresh(stem) for _ in sizes)
            for name in names:
                self.bind(name)
            self.body.append(f"{', '.join(names)} = {expr}")
            self.values[key] = names
        return list(self.values[key])

    def split_contraction(self, v: VertexPlan, c: Contraction, weights: str) -> str:
        """A contraction cut before its shared weights (plan.VertexPlan.weights_on_nodes): the part
        without weights on the edges, its result added into the nodes, the weights applied there."""
        d, out = self.d, self.stem(v.outputs[0])
        operands = [self.segment(s, d.irreps(s.wire)) for s in c.segments]
        operands.append(self.buffer(f"{out}_cg", c.constant, _constant_text(c)) + ".to(dtype)")
        self.body += self.legend(v, c)
        edge_part = self.let(f"{out}_edges", self._replay(c.edge_steps, operands))
        width = int(np.prod(c.edge_shape))
        end = self.ends[self._absorbed_scatter(v).endpoint]
        shape = ", ".join(str(n) for n in c.edge_shape)
        summed = self.let(f"{self.stem(v.scatter_into)}_sum",
                          f"_scatter_add({edge_part}.reshape(-1, {width}), {end}, num_nodes).reshape(-1, {shape})")
        node_operands = [summed, f"{weights}[{self.weight_selection(out, c.weight_index)}]"
                         f".reshape({', '.join(str(n) for n in c.weight_shape)})"]
        if c.scatter is not None:
            node_operands.append(self.buffer(f"{out}_scatter", c.scatter, _scatter_text(c)) + ".to(dtype)")
        result = self._replay(c.node_steps, node_operands)
        paths = ", ".join(_path_text(d, v, k) for k in c.paths[:4]) + (" ..." if len(c.paths) > 4 else "")
        return self.let(f"{self.stem(v.scatter_into)}_part", result, comment=paths)

    def legend(self, v: VertexPlan, c: Contraction) -> list[str]:
        """A comment line with the contraction's equation and, the first time a vertex uses it, what each
        index letter means (plan._contraction: per input a channel and a component letter, then those
        of _LETTERS); the einsum, bmm and multiply-and-sum steps below it use the same letters."""
        if (v.node, c.equation) in self.legends:
            return [f"# {c.equation}"]
        self.legends.add((v.node, c.equation))
        subscripts = c.equation.split("->")[0].split(",")
        parts = [f"z {v.domain}s" if v.domain else "z batch"]
        parts += [f"`{self.stem(w)}`: {sub[1]} channel, {sub[2]} component" for w, sub in zip(v.inputs, subscripts)]
        parts += [f"{letter} {_LETTERS[letter]}" for letter in dict.fromkeys(c.equation) if letter in _LETTERS]
        return _comment_lines(f"{c.equation}  ({'; '.join(parts)})")

    def _replay(self, steps, operands: list[str]) -> str:
        """The planner's pairwise order: each step pops its operands and appends its result; the
        intermediates get names (an intermediate computed before is reused), the last is returned."""
        names = list(operands)
        result = None
        for k, step in enumerate(steps):
            args = [names[i] for i in step.positions]
            for i in sorted(step.positions, reverse=True):
                names.pop(i)
            expr = _step_expression(step, args)
            if k == len(steps) - 1:
                result = expr
            else:
                names.append(self.let("t", expr))
        return result

    def contraction(self, v: VertexPlan, c: Contraction, weights: str | None) -> str:
        d, out = self.d, self.stem(v.outputs[0])
        operands = [self.segment(s, d.irreps(s.wire)) for s in c.segments]
        scale = None
        if v.kind == "linear":
            scale = float(c.constant)
        else:
            operands.append(self.buffer(f"{out}_cg", c.constant, _constant_text(c)) + ".to(dtype)")
        if c.weight_index is not None:
            sel = self.weight_selection(out, c.weight_index)
            shape = ", ".join(str(s) for s in c.weight_shape)
            if v.external:
                operands.append(f"{weights}[:, {sel}].reshape(-1, {shape})")
            else:
                operands.append(f"{weights}[{sel}].reshape({shape})")
        if c.scatter is not None:
            operands.append(self.buffer(f"{out}_scatter", c.scatter, _scatter_text(c)) + ".to(dtype)")
        self.body += self.legend(v, c)
        result = self._replay(c.steps, operands)
        if scale is not None and scale != 1.0:
            result = f"{result} * {scale!r}"
        paths = ", ".join(_path_text(d, v, k) for k in c.paths[:4]) + (" ..." if len(c.paths) > 4 else "")
        return self.let(f"{out}_part", result, comment=paths)


def _constant_text(c: Contraction) -> str:
    subscripts = c.equation.split("->")[0].split(",")
    return f"coupling tensor [{subscripts[len(c.segments)]}] of {c.equation}"


def _scatter_text(c: Contraction) -> str:
    return f"0/1 matrix [qo] of {c.equation}: (path, output component) to output component"


def _aligned(name: str, sub: str, target: str) -> str:
    """name (indexed by sub) permuted and unsqueezed to broadcast against target's letter order."""
    perm = [sub.index(c) for c in target if c in sub]
    expr = name
    if perm != list(range(len(sub))):
        expr = f"{expr}.permute({', '.join(map(str, perm))})"
    if len(sub) < len(target):
        expr += "[" + ", ".join(":" if c in sub else "None" for c in target) + "]"
    return expr


def _shape(letters: str, sizes: dict[str, int]) -> str:
    """A reshape argument; the batch letter z is left to -1 (any batch size)."""
    dims = [1] if not letters else []
    if letters:
        product, free = 1, False
        for c in letters:
            if c == "z":
                free = True
            else:
                product *= sizes[c]
        dims = ["-1" if free else str(product)]
    return dims[0]


def _bmm_expression(step, args: list[str]) -> str:
    """An explicit torch.bmm on contiguous [batch, m, k] @ [batch, k, n] operands: einsum would hand
    bmm permuted views, and PyTorch's CPU bmm then copies every batch element separately."""
    (sa, sb), out = step.equation.split("->")[0].split(","), step.equation.split("->")[1]
    shared, a_only, b_only, summed = step.groups
    sizes = dict(step.sizes)
    left = _aligned(args[0], sa, shared + a_only + summed)
    right = _aligned(args[1], sb, shared + summed + b_only)
    left = f"{left}.reshape({_shape(shared, sizes)}, {_shape(a_only, sizes)}, {_shape(summed, sizes)}).contiguous()"
    right = f"{right}.reshape({_shape(shared, sizes)}, {_shape(summed, sizes)}, {_shape(b_only, sizes)}).contiguous()"
    natural = shared + a_only + b_only
    dims = ", ".join("-1" if c == "z" else str(sizes[c]) for c in natural)
    expr = f"torch.bmm({left}, {right}).reshape({dims})"
    if natural != out:
        expr += f".permute({', '.join(str(natural.index(c)) for c in out)})"
    return expr


def _step_expression(step, args: list[str]) -> str:
    lhs, out = step.equation.split("->")
    subs = lhs.split(",")
    if step.kind == "bmm":
        return _bmm_expression(step, args)
    if step.kind == "matmul":
        return f"torch.einsum({step.equation!r}, {', '.join(args)})"
    union = "".join(dict.fromkeys("".join(subs)))
    target = out + "".join(c for c in union if c not in out)
    product = " * ".join(_aligned(a, sub, target) for a, sub in zip(args, subs))
    if step.kind == "mul":   # letters summed here all have size 1: drop them
        extra = len(target) - len(out)
        return f"({product})[..., {', '.join(['0'] * extra)}]" if extra else product
    dims = tuple(range(len(out), len(target)))
    return f"({product}).sum(dim={dims[0] if len(dims) == 1 else dims})"


def _path_text(d, v: VertexPlan, k: int) -> str:
    p = v.paths[k]
    ins = " x ".join(str(d.irreps(w)[t].irrep) for w, t in zip(v.inputs, p.ins))
    inner = f" ({', '.join(map(str, p.inner))})" if p.inner else ""
    if v.symmetric_bases:   # a basis function on the sorted terms: its index among the output term's
        inner = f" (symmetric {sum(1 for q in v.paths[:k] if q.outs == p.outs)})"
    return f"{ins}{inner} -> {v.out_irreps[p.outs[0]].irrep}"


def forward_argument_names(plan: Plan) -> list[str]:
    """The generated forward's parameters: inputs in declaration order, then external weights; for a
    graph diagram then edge_index, and num_nodes (keyword-only) where no input lives on the nodes."""
    names, d = module_names(plan), plan.diagram
    args = [names.wires[w] for w in d.inputs] + \
        [names.weight_arguments[v.weight_owner or v.outputs[0]] for v in plan.vertices if v.external and v.weight_numel]
    if d.is_graph:
        args.append("edge_index")
        if not any(d.domain(w) == "node" for w in d.inputs) and any(d.domain(w) == "node" for w in d.wires):
            args.append("num_nodes")
    return args


def internal_weight_name(plan: Plan, vertex: VertexPlan) -> str:
    """The parameter holding a vertex's internal weights (names.ModuleNames: `<wire>_weight`)."""
    return module_names(plan).weight_parameters[vertex.weight_owner or vertex.outputs[0]]


HELPERS = '''

def _table(shape, values, entries):
    """A float64 tensor from its nonzero entries (coupling tensors are sparse): `entries` holds
    whitespace-separated "position:k" pairs, position the row-major flat index of an entry and k
    the index of its value in `values` (each distinct value is written once)."""
    pairs = [entry.split(":") for entry in entries.split()]
    positions = torch.tensor([int(p) for p, _ in pairs], dtype=torch.long)
    slots = torch.tensor([int(k) for _, k in pairs], dtype=torch.long)
    out = torch.zeros(shape, dtype=torch.float64)
    out.view(-1)[positions] = torch.tensor(values, dtype=torch.float64)[slots]
    return out


def _constant(shape, flat_indices, values):
    """A float64 tensor from its nonzero entries (coupling tensors are sparse)."""
    out = torch.zeros(shape, dtype=torch.float64)
    out.view(-1)[torch.tensor(flat_indices, dtype=torch.long)] = torch.tensor(values, dtype=torch.float64)
    return out


def _check_argument(module, argument, x, last, batch, first, irreps):
    """ValueError unless x has shape batch + (last,).  It tests shapes only, never values, so
    torch.compile and torch.export decide it while tracing."""
    if x.shape[-1:] != (last,) or x.shape[:-1] != batch:
        what = f"input `{argument}` ({irreps})" if irreps is not None else f"external weights `{argument}`"
        if x.shape[-1:] != (last,):
            raise ValueError(f"{module}: {what} needs a last dimension of {last}; got shape {tuple(x.shape)}")
        raise ValueError(f"{module}: {what} has batch shape {tuple(x.shape[:-1])}, but `{first}` has "
                         f"{tuple(batch)}; every input and external weight needs the same batch shape")
'''


GRAPH_HELPERS = '''

def _check_edge_index(edge_index, num_nodes):
    """edge_index must be [2, E] integers naming nodes 0..V-1.  The range is checked on the CPU in eager
    mode only: elsewhere it would cost a device sync, and compiled graphs cannot branch on data."""
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        got = list(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__
        raise ValueError(f"edge_index must be a [2, E] tensor (row 0 the senders, row 1 the receivers); got {got}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"edge_index must hold integers (torch.long or torch.int32); got {edge_index.dtype}")
    if not torch.compiler.is_compiling() and edge_index.device.type == "cpu" and edge_index.numel() > 0:
        low, high = (int(v) for v in torch.aminmax(edge_index))
        if low < 0 or (num_nodes is not None and high >= num_nodes):
            raise IndexError(f"edge_index names node {low if low < 0 else high}, but the nodes are "
                             f"0 to {num_nodes - 1} (V = {num_nodes})" if num_nodes is not None else
                             f"edge_index names node {low}; node numbers start at 0")


def _scatter_add(values, index, num_nodes):
    """Row e of values added into row index[e] of a [num_nodes, ...] tensor of zeros."""
    return values.new_zeros((num_nodes,) + tuple(values.shape[1:])).index_add(0, index, values)


def _check_rows(name, tensor, rows, dim, domain):
    """A node tensor is [V, dim], an edge tensor [E, dim] (E = edge_index.shape[1])."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2 or tensor.shape[0] != rows \
            or tensor.shape[1] != dim:
        got = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        size = "V" if domain == "node" else "E"
        raise ValueError(f"{name} is per {domain}: expected a [{size} = {rows}, {dim}] tensor, got {got}")
'''


def emit_module_source(plans: list[Plan], source_name: str, closed: list[str] = ()) -> str:
    """The module text.  source_name (a file name) is free text: it reaches the source only through
    names.comment and names.docstring; diagram and wire names only through names.python_name."""
    header = [f"# Code generated by fusionlang {__version__} from {pynames.comment(source_name)}. DO NOT EDIT.",
              pynames.docstring([f"PyTorch modules for the diagrams of {source_name}."])]
    if closed:
        header.append("# " + pynames.comment(f"Closed diagrams (numbers, not modules; see `fusionc eval`): "
                                             f"{', '.join(closed)}"))
    header.append("import torch")
    helpers = HELPERS + (GRAPH_HELPERS if any(p.diagram.is_graph for p in plans) else "")
    parts = ["\n".join(header) + "\n" + helpers]
    names = []
    for plan in plans:
        writer = _ModuleWriter(plan)
        if writer.class_name() in names:
            # The checker reports this (F036) before anything is compiled; never overwrite a class.
            raise pynames.UnsafeName(f"two diagrams map to the Python class `{writer.class_name()}`")
        parts.append(writer.write())
        names.append(writer.class_name())
    parts.append(f"__all__ = {names!r}\n")
    return "\n\n".join(parts)
