"""Plan -> Python source with Triton kernels for the fuse vertices (backend="triton").

The module classes are those of the torch backend (emit_torch._ModuleWriter: same names,
arguments and parameters; no coupling buffers); only a fuse vertex that has kernels becomes one
call, `m = _fuse0(h, y, self.m_weight.to(dtype))`, to a generated function that runs

- the Triton kernels through a torch.autograd.Function when the tensors are on a GPU (or
  under TRITON_INTERPRET=1, Triton's interpreter on the CPU), and
- otherwise the vertex's torch form (one einsum per path with its coupling tensor), which
  also gives double backward: a backward that must itself be differentiable
  (create_graph=True) differentiates the torch form instead of running the kernels.

Other vertices (linear, and fuse vertices spec.unsupported_reason turns away) keep the torch
backend's code.  The file imports os (for TRITON_INTERPRET), torch and triton only.
"""
from __future__ import annotations

import math

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
    def __init__(self, plan: Plan, functions: dict[str, str]):
        super().__init__(plan)
        self.functions = functions      # vertex node -> generated function name

    def vertex(self, v: VertexPlan) -> None:
        function = self.functions.get(v.node)
        if function is None:
            super().vertex(v)
            return
        out = self.var[v.outputs[0]]
        opts = f" [weights={v.mode}{', external' if v.external else ''}]"
        self.body += ["", f"# line {v.line}: {out} = fuse({', '.join(v.inputs)}){opts}: {len(v.paths)} paths, "
                      f"Triton kernels ({function})"]
        if v.gathered_from:
            # The gather this fuse absorbed (plan.VertexPlan.gathered_from): its rows, then the kernels.
            gather = next(g for g in self.plan.vertices if g.absorbed_by == v.node and g.kind == "gather")
            self.body.append(f"{self.var[v.inputs[0]]} = {self.var[v.gathered_from]}.index_select(0, "
                             f"{self.ends[gather.endpoint]})")
        args = [self.var[w] for w in v.inputs]
        if v.weight_numel:
            if v.external:
                args.append(self.weights_arg(v))
            else:
                pname = self.weight_params[v.node]
                self.init.append(f"self.{pname} = torch.nn.Parameter(torch.randn({v.weight_numel}))")
                args.append(f"self.{pname}.to(dtype)")
        self.body.append(f"{out} = {function}({', '.join(args)})")
        if v.scatter_into:
            # The scatter this fuse absorbed: the kernels' edge message, then its rows added into the nodes.
            end = self.ends[self._absorbed_scatter(v).endpoint]
            self.body.append(f"{self.var[v.scatter_into]} = _scatter_add({out}, {end}, num_nodes)")


def _function_prefix(names: list[str]) -> str:
    """`_fuse`, lengthened until no class or wire name starts with it (in any case: the
    autograd.Function classes are `_Fuse0`, ...), so that none can shadow a generated function."""
    prefix = "_fuse"
    while any(name.lower().startswith(prefix) for name in names):
        prefix += "x"
    return prefix


def vertex_source(spec: FuseSpec, wires: list[str], heading: str) -> str:
    """Kernels, torch form, autograd.Function and dispatching function of one fuse vertex."""
    writer = KernelWriter(spec)
    writer.set_aliases(wires)
    kernels = writer.kernels()
    stem, n = spec.stem, spec.arity
    ins = [f"in{r}" for r in range(n)]
    weighted = spec.weight_numel > 0
    args = ins + (["weights"] if weighted else [])
    lines = [f"# {'-' * 100}", f"# {heading}", ""]
    for k in kernels:
        lines += [k.source, "", ""]
    lines += _torch_form(spec), ""
    # -- autograd.Function
    fn = f"_{stem[1:].capitalize()}"
    canonical = [writer.canon[r] == r for r in range(n)]
    lines += [f"class {fn}(torch.autograd.Function):",
              f'    """{heading.split(": ", 1)[-1]}: the Triton kernels, forward and backward."""', "",
              "    @staticmethod",
              f"    def forward(ctx, {', '.join(args)}):",
              f"        ctx.save_for_backward({', '.join(args)})"]
    lines += [f"        {a} = {a}.contiguous()" for a in args]
    lines += ["        rows = in0.shape[0]",
              f"        out = torch.empty((rows, {spec.out_dim}), dtype=in0.dtype, device=in0.device)",
              "        if rows:",
              f"            {kernels[0].name}[(triton.cdiv(rows, {kernels[0].block_z}),)](",
              f"                {', '.join(args)}, out, rows, BLOCK_Z={kernels[0].block_z}, num_warps={NUM_WARPS})",
              "        return out", "",
              "    @staticmethod",
              "    def backward(ctx, grad):",
              f"        {', '.join(args)}, = ctx.saved_tensors",
              "        if torch.is_grad_enabled():   # create_graph=True: differentiate the torch form",
              f"            return _differentiable_grads({stem}_torch, ({', '.join(args)},), "
              "ctx.needs_input_grad, grad)"]
    lines += [f"        {a} = {a}.contiguous()" for a in args]
    lines += ["        grad = grad.contiguous()", "        rows = in0.shape[0]"]
    grads = []
    for r in range(n):
        if canonical[r]:
            lines.append(f"        gin{r} = torch.empty_like(in{r})")
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
    if spec.mode == "uvw":
        kx, ky = kernels[1], kernels[2]
        lines += [f"            {kx.name}[(triton.cdiv(rows, {kx.block_z}),)](",
                  f"                in0, in1, weights, grad, gin0, gw, rows, BLOCK_Z={kx.block_z}{atomic}, "
                  f"num_warps={NUM_WARPS})",
                  f"            {ky.name}[(triton.cdiv(rows, {ky.block_z}),)](",
                  f"                in0, in1, weights, grad, gin1, rows, BLOCK_Z={ky.block_z}, num_warps={NUM_WARPS})"]
    else:
        kb = kernels[1]
        lines += [f"            {kb.name}[(triton.cdiv(rows, {block}),)](",
                  f"                {', '.join(args)}, grad, {', '.join(gins)}{', gw' if weighted else ''}, rows, "
                  f"BLOCK_Z={block}{atomic}, num_warps={NUM_WARPS})"]
    if weighted and not spec.external:
        lines += ["        if not atomic:", "            gw = gw.sum(0)"]
    if weighted:
        grads.append("gw")
    lines += [f"        return {', '.join(grads)}", "", ""]
    # -- dispatch
    lines += [f"def {stem}({', '.join(args)}):",
              f"    if _use_kernels(in0):",
              f"        return {fn}.apply({', '.join(args)})",
              f"    return {stem}_torch({', '.join(args)})"]
    return "\n".join(lines) + "\n"


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


def triton_vertices(plan: Plan, prefix: str, counter: list[int]) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(vertex -> function name, generated sources, vertex -> reason it keeps torch code)."""
    d = plan.emitted
    functions, sources, reasons = {}, [], {}
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
        sources.append(vertex_source(spec, list(v.inputs), heading))
        functions[v.node] = stem
    return functions, sources, reasons


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
        functions, sources, reasons = triton_vertices(plan, prefix, counter)
        parts += sources
        for node, reason in reasons.items():
            v = next(v for v in plan.vertices if v.node == node)
            notes.append(f"# diagram {plan.diagram.name}, line {v.line}: {v.outputs[0]} = {v.kind}(...) keeps torch "
                         f"code: {reason}")
        classes.append(_TritonModuleWriter(plan, functions).write())
    if notes:
        parts.append("\n".join(notes) + "\n")
    parts += classes
    parts.append(f"__all__ = {class_names!r}\n")
    return "\n\n".join(parts)
