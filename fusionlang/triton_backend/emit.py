"""Plan -> Python source with Triton kernels for the fuse vertices (backend="triton").

The module classes are those of the torch backend (emit_torch._ModuleWriter: same names,
arguments and parameters; no coupling buffers); only a fuse vertex that has kernels becomes one
call, `m = _fuse0(h, y, self.m_weight.to(dtype))`, to a generated function that runs

- the Triton kernels through a torch.autograd.Function when the tensors are on a GPU (or
  under TRITON_INTERPRET=1, Triton's interpreter on the CPU), and
- otherwise the vertex's torch form (one einsum per path with its coupling tensor), which
  also gives double backward: a backward that must itself be differentiable
  (create_graph=True) differentiates the torch form instead of running the kernels.

In a graph diagram, a fuse that reads gathered wires or writes into a scatter (plan.VertexPlan.
scatter_into) takes them into its kernels (Chain): node rows read through edge_index, the message
added into the nodes atomically, so that neither the gathered rows nor the edge message is stored.
Other vertices (linear, and fuse vertices spec.unsupported_reason turns away) keep the torch
backend's code.  The file imports os (for TRITON_INTERPRET), torch and triton only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import names as pynames
from ..version import __version__
from ..backend.emit_torch import GRAPH_HELPERS, HELPERS, _ModuleWriter
from ..backend.plan import Plan, VertexPlan
from .kernels import NUM_WARPS, KernelWriter
from .spec import FuseSpec, fuse_spec, unsupported_reason

# Internal-weight gradients: a [programs, numel] buffer summed afterwards (deterministic) while
# it stays below this many elements, atomic adds into one row beyond (_PARTIAL_LIMIT in the file).
PARTIAL_LIMIT = 1 << 22

RUNTIME = f'''
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
# Internal-weight gradients: each kernel program writes one row of a [programs, numel] buffer
# that is summed afterwards (deterministic) while the buffer stays under this many elements;
# beyond, programs add into one row atomically (the summation order then varies run to run).
_PARTIAL_LIMIT = {PARTIAL_LIMIT}


def _use_kernels(tensor):
    """Kernels run on GPU tensors, and on CPU tensors under Triton's interpreter; torch.compile and
    torch.export trace the torch form instead (plain torch operations, which they can fuse)."""
    return (tensor.is_cuda or _INTERPRET) and not torch.compiler.is_compiling()


def _differentiable_grads(torch_form, inputs, needs, grad):
    """Gradients through the torch form of a vertex, with create_graph so that they can be
    differentiated again (double backward).  Each input enters through its own view, so an input
    read twice gets one gradient per position, as autograd.Function expects."""
    with torch.enable_grad():
        views = [t.view_as(t) for t in inputs]
        out = torch_form(*views)
        wanted = [v for v, need in zip(views, needs) if need]
        grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in needs)
'''


class _TritonModuleWriter(_ModuleWriter):
    def __init__(self, plan: Plan, functions: dict[str, str], chains: dict[str, Chain]):
        super().__init__(plan)
        self.functions = functions      # vertex node -> generated function name
        self.chains = chains            # vertex node -> its gathers and scatter run inside its kernels
        # Gathers whose every reader reads the node wire inside its kernels: nothing left to emit.
        readers: dict[str, list[str]] = {}
        for v in plan.vertices:
            for w in v.inputs:
                readers.setdefault(w, []).append(v.node)
        self.fused_gathers = {g.node: readers[g.outputs[0]][0] for g in plan.vertices
                              if g.kind == "gather" and g.outputs[0] not in plan.emitted.outputs
                              and all(r in chains and chains[r].gathered for r in readers.get(g.outputs[0], []))
                              and readers.get(g.outputs[0])}

    def render_class(self, args) -> str:
        # The torch backend's persistent buffers (coupling constants), unused by the kernels: with them
        # both backends' modules have the same state_dict keys, so one loads into the other strictly.
        torch_writer = _ModuleWriter(self.plan)
        torch_writer.write()
        missing = [line for line in torch_writer.init if line.startswith("self.register_buffer(")
                   and "persistent=False" not in line and line not in self.init]
        if missing:
            self.init += ["# The torch backend's coupling buffers (unused here): state_dicts load across backends."]
            self.init += missing
        return super().render_class(args)

    def gather(self, v: VertexPlan) -> None:
        if v.node not in self.fused_gathers:
            super().gather(v)
            return
        reader = next(f for f in self.plan.vertices if f.node == self.fused_gathers[v.node])
        self.body += ["", f"# line {v.line}: {self.var[v.outputs[0]]} = gather({v.inputs[0]}, {v.endpoint}): "
                      f"read inside the kernels of line {reader.line}"]

    def vertex(self, v: VertexPlan) -> None:
        function = self.functions.get(v.node)
        if function is None:
            super().vertex(v)
            return
        out = self.var[v.outputs[0]]
        opts = f" [weights={v.mode}{', external' if v.external else ''}]"
        chain = self.chains.get(v.node, Chain())
        what = "Triton kernels" if not chain.endpoints else \
            "one Triton kernel with its " + " and ".join(
                (["gathers" if len(chain.gathered) > 1 else "gather"] if chain.gathered else []) +
                (["scatter"] if chain.scatter else []))
        self.body += ["", f"# line {v.line}: {out} = fuse({', '.join(v.inputs)}){opts}: {len(v.paths)} paths, "
                      f"{what} ({function})"]
        producers = {g.outputs[0]: g for g in self.plan.vertices if g.kind == "gather"}
        args = [self.var[producers[w].inputs[0]] if r in chain.gathered else self.var[w]
                for r, w in enumerate(v.inputs)]
        if v.weight_numel:
            if v.external:
                args.append(self.weights_arg(v))
            else:
                pname = self.weight_params[v.node]
                self.init.append(f"self.{pname} = torch.nn.Parameter(torch.randn({v.weight_numel}))")
                args.append(f"self.{pname}.to(dtype)")
        args += [self.ends[end] for end in chain.endpoints]
        if chain.scatter:
            # The scatter this fuse absorbed: the kernel adds each edge's message into the nodes.
            self.body.append(f"{self.var[v.scatter_into]} = {function}({', '.join(args + ['num_nodes'])})")
        else:
            self.body.append(f"{out} = {function}({', '.join(args)})")


def chain_of(plan: Plan, v: VertexPlan) -> Chain:
    """The gathers feeding a graph fuse and the scatter it writes into (plan.VertexPlan.scatter_into:
    the planner's rewrite for a fuse whose only reader is a scatter)."""
    producers = {g.outputs[0]: g for g in plan.vertices if g.kind == "gather"}
    gathered = {r: producers[w].endpoint for r, w in enumerate(v.inputs) if w in producers}
    scatter = None
    if v.scatter_into:
        scatter = next(s.endpoint for s in plan.vertices if s.kind == "scatter" and s.outputs[0] == v.scatter_into)
    return Chain(gathered, scatter)


def _function_prefix(names: list[str]) -> str:
    """`_fuse`, lengthened until no class or wire name starts with it (in any case: the
    autograd.Function classes are `_Fuse0`, ...), so that none can shadow a generated function."""
    prefix = "_fuse"
    while any(name.lower().startswith(prefix) for name in names):
        prefix += "x"
    return prefix


@dataclass(frozen=True)
class Chain:
    """A graph fuse run as one kernel with its gathers and its scatter (gather -> fuse -> scatter):
    input r in `gathered` is a node wire read at edge_index's `gathered[r]` end; with `scatter`, the
    output goes into node rows at that end (atomic adds) and the [E, dim] edge message never exists."""
    gathered: dict = field(default_factory=dict)     # input position -> "sender" | "receiver"
    scatter: str | None = None

    @property
    def endpoints(self) -> list[str]:
        return sorted(set(self.gathered.values()) | ({self.scatter} if self.scatter else set()))


def vertex_source(spec: FuseSpec, wires: list[str], heading: str, chain: Chain | None = None) -> str:
    """Kernels, torch form, autograd.Function and dispatching function of one fuse vertex (with
    chain: of the gather -> fuse -> scatter chain around it)."""
    chain = chain or Chain()
    writer = KernelWriter(spec, chain.gathered, chain.scatter)
    writer.set_aliases(wires)
    kernels = writer.kernels()
    stem, n = spec.stem, spec.arity
    ins = [f"in{r}" for r in range(n)]
    weighted = spec.weight_numel > 0
    tensors = ins + (["weights"] if weighted else [])
    indices = [f"index_{end}" for end in chain.endpoints]
    args = tensors + indices + (["num_nodes"] if chain.scatter else [])
    lines = [f"# {'-' * 100}", f"# {heading}", ""]
    for k in kernels:
        lines += [k.source, "", ""]
    lines += _torch_form(spec), ""
    torch_form = f"{stem}_torch"
    if chain.endpoints:
        lines += _chain_torch_form(spec, chain), ""
        torch_form = f"{stem}_chain_torch"
    # -- autograd.Function
    fn = f"_{stem[1:].capitalize()}"
    canonical = [writer.canon[r] == r for r in range(n)]
    # Rows: edges (the index length) for a chain, else the batch rows.
    rows = f"{indices[0]}.shape[0]" if indices else "in0.shape[0]"
    launch_tail = "".join(f"{i}, " for i in indices) + "rows"
    lines += [f"class {fn}(torch.autograd.Function):",
              f'    """{heading.split(": ", 1)[-1]}: the Triton kernels, forward and backward."""', "",
              "    @staticmethod",
              f"    def forward(ctx, {', '.join(args)}):",
              f"        ctx.save_for_backward({', '.join(tensors + indices)})"]
    if chain.scatter:
        lines.append("        ctx.num_nodes = num_nodes")
    lines += [f"        {a} = {a}.contiguous()" for a in tensors + indices]
    lines.append(f"        rows = {rows}")
    if chain.scatter:     # atomic adds into the node rows: they start at zero
        lines.append(f"        out = torch.zeros((num_nodes, {spec.out_dim}), dtype=in0.dtype, device=in0.device)")
    else:
        lines.append(f"        out = torch.empty((rows, {spec.out_dim}), dtype=in0.dtype, device=in0.device)")
    lines += ["        if rows:",
              f"            {kernels[0].name}[(triton.cdiv(rows, {kernels[0].block_z}),)](",
              f"                {', '.join(tensors)}, out, {launch_tail}, BLOCK_Z={kernels[0].block_z}, "
              f"num_warps={NUM_WARPS})",
              "        return out", "",
              "    @staticmethod",
              "    def backward(ctx, grad):",
              f"        {', '.join(tensors + indices)}, = ctx.saved_tensors"]
    tail = ""
    if chain.scatter:
        tail = " + (None,)"     # num_nodes
        lines.append("        num_nodes = ctx.num_nodes")
    form_call = torch_form if not chain.scatter else f"lambda *a: {torch_form}(*a, num_nodes)"
    needs = "ctx.needs_input_grad" + (f"[:{len(tensors + indices)}]" if chain.scatter else "")
    lines += ["        if torch.is_grad_enabled():   # create_graph=True: differentiate the torch form",
              f"            return _differentiable_grads({form_call}, ({', '.join(tensors + indices)},), "
              f"{needs}, grad){tail}"]
    lines += [f"        {a} = {a}.contiguous()" for a in tensors]
    lines += ["        grad = grad.contiguous()", f"        rows = {rows}"]
    grads = []
    for r in range(n):
        if canonical[r]:
            # A gathered input's gradient is added into its node rows (atomically): it starts at zero.
            lines.append(f"        gin{r} = torch.{'zeros' if r in chain.gathered else 'empty'}_like(in{r})")
            grads.append(f"gin{r}")
        else:   # the same wire as an earlier input: its kernels add both positions' gradients there
            grads.append("None")
    block = kernels[1].block_z
    if weighted:
        if spec.external:
            lines.append("        gw = torch.empty_like(weights)")
        else:
            lines += [f"        programs = triton.cdiv(rows, {block})",
                      f"        atomic = programs * {spec.weight_numel} > _PARTIAL_LIMIT",
                      f"        gw = (torch.zeros({spec.weight_numel}, dtype=in0.dtype, device=in0.device) if atomic "
                      f"else torch.empty((programs, {spec.weight_numel}), dtype=in0.dtype, device=in0.device))"]
    lines.append("        if rows:")
    gins = [f"gin{r}" if canonical[r] else f"gin{writer.canon[r]}" for r in range(n)]
    atomic = ", ATOMIC=atomic" if weighted and not spec.external else ""
    if spec.mode == "uvw":      # one backward kernel per input; the first also writes the weights' gradient
        for r, k in enumerate(kernels[1:]):
            lines += [f"            {k.name}[(triton.cdiv(rows, {k.block_z}),)](",
                      f"                {', '.join(ins)}, weights, grad, gin{r}{', gw' if r == 0 else ''}, {launch_tail}, "
                      f"BLOCK_Z={k.block_z}{atomic if r == 0 else ''}, num_warps={NUM_WARPS})"]
    else:
        kb = kernels[1]
        lines += [f"            {kb.name}[(triton.cdiv(rows, {block}),)](",
                  f"                {', '.join(tensors)}, grad, {', '.join(gins)}{', gw' if weighted else ''}, "
                  f"{launch_tail}, BLOCK_Z={block}{atomic}, num_warps={NUM_WARPS})"]
    if weighted and not spec.external:
        lines += ["        if not atomic:", "            gw = gw.sum(0)"]
    if weighted:
        grads.append("gw")
    grads += ["None"] * (len(args) - len(tensors))      # edge indices, num_nodes
    lines += [f"        return {', '.join(grads)}", "", ""]
    # -- dispatch
    lines += [f"def {stem}({', '.join(args)}):",
              "    if _use_kernels(in0):",
              f"        return {fn}.apply({', '.join(args)})",
              f"    return {torch_form}({', '.join(args)})"]
    return "\n".join(lines) + "\n"


def _chain_torch_form(spec: FuseSpec, chain: Chain) -> str:
    """The chain in torch operations: index_select, the vertex's torch form, index_add."""
    stem, n = spec.stem, spec.arity
    tensors = [f"in{r}" for r in range(n)] + (["weights"] if spec.weight_numel else [])
    indices = [f"index_{end}" for end in chain.endpoints]
    args = tensors + indices + (["num_nodes"] if chain.scatter else [])
    rows = [f"in{r}.index_select(0, index_{chain.gathered[r]})" if r in chain.gathered else f"in{r}"
            for r in range(n)] + (["weights"] if spec.weight_numel else [])
    message = f"{stem}_torch({', '.join(rows)})"
    body = f"_scatter_add({message}, index_{chain.scatter}, num_nodes)" if chain.scatter else message
    return "\n".join([f"def {stem}_chain_torch({', '.join(args)}):",
                      '    """The chain in torch operations (gathers, the vertex, the scatter)."""',
                      f"    return {body}", ""])


def _torch_form(spec: FuseSpec) -> str:
    """One einsum per path with a dense coupling tensor (built once per device and dtype)."""
    stem, n, mode = spec.stem, spec.arity, spec.mode
    chan = ["u"] * n if mode == "uuu" else list("uvstqr"[:n])
    comp = list("ijlmno"[:n])
    table = []
    for p in spec.paths:
        shape = tuple(spec.inputs[r][p.ins[r]].dim for r in range(n)) + (spec.out[p.out].dim,)
        flat = [_flat(shape, idx + (k,)) for idx, k, _ in p.entries]
        values = [c for _, _, c in p.entries]
        table.append(f"    ({shape!r}, {flat!r}, {[float(x) for x in values]!r}),  # {p.text}")
    lines = [f"{stem}_tables = [   # per path: coupling shape, nonzero positions, values (normalisation included)",
             *table, "]", f"{stem}_cache = {{}}", "", "",
             f"def {stem}_torch({', '.join([f'in{r}' for r in range(n)] + (['weights'] if spec.weight_numel else []))}):",
             '    """The vertex in torch operations: CPU tensors without the interpreter, and double backward."""',
             "    key = (in0.device, in0.dtype)",
             f"    if key not in {stem}_cache:",
             f"        {stem}_cache[key] = [_constant(*t).to(device=in0.device, dtype=in0.dtype) for t in {stem}_tables]",
             f"    coupling = {stem}_cache[key]"]
    terms = {}
    for p in spec.paths:
        for r in range(n):
            t = spec.inputs[r][p.ins[r]]
            if (r, p.ins[r]) not in terms:
                terms[(r, p.ins[r])] = f"x{r}_{p.ins[r]}"
                lines.append(f"    x{r}_{p.ins[r]} = in{r}[:, {t.offset}:{t.offset + t.mul * t.dim}]"
                             f".reshape(-1, {t.mul}, {t.dim})")
    parts: dict[int, list[str]] = {}
    for q, p in enumerate(spec.paths):
        operands = [terms[(r, p.ins[r])] for r in range(n)] + [f"coupling[{q}]"]
        subs = [f"z{chan[r]}{comp[r]}" for r in range(n)] + ["".join(comp) + "k"]
        muls = [spec.inputs[r][p.ins[r]].mul for r in range(n)]
        mul_c = spec.out[p.out].mul
        if mode != "none":
            shape = {"uvu": tuple(muls), "uuu": (muls[0],), "uvw": tuple(muls) + (mul_c,)}[mode]
            numel = math.prod(shape)
            sel = f"{p.weight_offset}:{p.weight_offset + numel}"
            dims = ", ".join(map(str, shape))
            operands.append(f"weights[:, {sel}].reshape(-1, {dims})" if spec.external
                            else f"weights[{sel}].reshape({dims})")
            letters = {"uvu": "".join(chan), "uuu": "u", "uvw": "".join(chan) + "w"}[mode]
            subs.append(("z" if spec.external else "") + letters)
            result = "zwk" if mode == "uvw" else "zuk"
            expr = f"torch.einsum({(','.join(subs) + '->' + result)!r}, {', '.join(operands)})"
        else:
            expr = f"torch.einsum({(','.join(subs) + '->z' + ''.join(chan) + 'k')!r}, {', '.join(operands)})" \
                   f".reshape(-1, {mul_c}, {spec.out[p.out].dim})"
        parts.setdefault(p.out, []).append(f"{expr}  # {p.text}")
    pieces = []
    for c, t in enumerate(spec.out):
        lines.append(f"    out{c} = (")
        lines += [f"        {'+ ' if k else ''}{e}" for k, e in enumerate(parts[c])]
        lines.append("    )")
        pieces.append(f"out{c}.reshape(-1, {t.mul * t.dim})")
    lines.append(f"    return torch.cat([{', '.join(pieces)}], dim=1)" if len(pieces) > 1 else f"    return {pieces[0]}")
    return "\n".join(lines) + "\n"


def _flat(shape, index) -> int:
    flat = 0
    for size, i in zip(shape, index):
        flat = flat * size + i
    return flat


def triton_vertices(plan: Plan, prefix: str, counter: list[int]):
    """(vertex -> function name, generated sources, vertex -> reason it keeps torch code, vertex ->
    its chain of gathers and scatter)."""
    d = plan.emitted
    functions, sources, reasons, chains = {}, [], {}, {}
    for v in plan.vertices:
        if v.kind in ("gather", "scatter"):
            continue
        reason = unsupported_reason(d, v)
        if reason is not None:
            reasons[v.node] = reason
            continue
        stem = f"{prefix}{counter[0]}"
        counter[0] += 1
        spec = fuse_spec(d, v, stem)
        opts = f"[weights={v.mode}{', external' if v.external else ''}]"
        heading = f"diagram {d.name}, line {v.line}: {v.outputs[0]} = fuse({', '.join(v.inputs)}) {opts}"
        chains[v.node] = chain_of(plan, v)
        sources.append(vertex_source(spec, list(v.inputs), heading, chains[v.node]))
        functions[v.node] = stem
    return functions, sources, reasons, chains


def coverage(plan: Plan) -> list[tuple[VertexPlan, str]]:
    """What backend="triton" does with each vertex of a plan (gathers and scatters a chain performs
    are left out): "kernels", "kernels with its gather(s) and scatter", or "torch code: <reason>"."""
    rows = []
    d = plan.emitted
    for v in plan.vertices:
        if v.kind in ("gather", "scatter"):
            continue
        reason = unsupported_reason(d, v)
        if reason is not None:
            rows.append((v, f"torch code: {reason}"))
            continue
        chain = chain_of(plan, v)
        parts = (["gather" + ("s" if len(chain.gathered) > 1 else "")] if chain.gathered else []) + \
            (["scatter"] if chain.scatter else [])
        rows.append((v, "kernels" + (f" with its {' and '.join(parts)}" if parts else "")))
    return rows


def emit_triton_module_source(plans: list[Plan], source_name: str, closed: list[str] = ()) -> str:
    """As emit_torch.emit_module_source (source_name is free text, reaching the source only through
    names.comment / names.docstring), with the fuse vertices' kernels and functions added."""
    header = [f"# Code generated by fusionlang {__version__} from {pynames.comment(source_name)} (Triton backend). "
              "DO NOT EDIT.",
              pynames.docstring([f"PyTorch modules for the diagrams of {source_name}, with Triton kernels for "
                                 "their fuse vertices."])]
    if closed:
        header.append("# " + pynames.comment(f"Closed diagrams (numbers, not modules; see `fusionc eval`): "
                                             f"{', '.join(closed)}"))
    header += ["import os", "", "import torch", "import triton", "import triton.language as tl"]
    helpers = HELPERS + (GRAPH_HELPERS if any(p.diagram.is_graph for p in plans) else "")
    parts = ["\n".join(header) + "\n" + helpers + RUNTIME]
    writers = [_ModuleWriter(plan) for plan in plans]
    class_names = [w.class_name() for w in writers]
    if len(set(class_names)) < len(class_names):     # the checker reports this (F036) first
        raise pynames.UnsafeName("two diagrams map to one Python class")
    prefix, counter = _function_prefix(class_names + [n for w in writers for n in w.var.values()]), [0]
    classes, notes = [], []
    for plan in plans:
        functions, sources, reasons, chains = triton_vertices(plan, prefix, counter)
        parts += sources
        for node, reason in reasons.items():
            v = next(v for v in plan.vertices if v.node == node)
            notes.append(f"# diagram {plan.diagram.name}, line {v.line}: {v.outputs[0]} = {v.kind}(...) keeps torch "
                         f"code: {reason}")
        classes.append(_TritonModuleWriter(plan, functions, chains).write())
    if notes:
        parts.append("\n".join(notes) + "\n")
    parts += classes
    parts.append(f"__all__ = {class_names!r}\n")
    return "\n\n".join(parts)
