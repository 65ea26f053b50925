"""fusionc subcommands beyond check/fmt: compile, plan, verify, eval, render, build."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..api import compile_analysis
from ..backend.emit_torch import _path_text, module_names
from ..backend.plan import plan_diagram, plan_steps
from ..build import build_all
from ..exact import NotEvaluable, evaluate_exact
from ..files import write_atomic
from ..render import RenderError, UnsupportedFormat, _format_of, render, select
from ..triton_backend.emit import coverage
from ..verify import TOLERANCE, equivariance_error
from .common import EXIT_ERRORS, EXIT_OK, UsageError, _load_checked, add_limits, current_limits


def _compiled(path: str, backend: str = "auto"):
    analysis = _load_checked(path)
    if analysis is None:
        return None
    try:
        return compile_analysis(analysis, backend=backend)
    except ValueError as exc:     # a backend this machine cannot use (triton not installed)
        raise UsageError(str(exc)) from None


# -- compile ------------------------------------------------------------------

def cmd_compile(args) -> int:
    program = _compiled(args.file, args.backend)
    if program is None:
        return EXIT_ERRORS
    out = Path(args.output) if args.output else Path(args.file).with_suffix(".py")
    try:
        write_atomic(out, program.python)
    except OSError as exc:
        raise UsageError(f"{out}: {exc.strerror or exc}") from None
    names = ", ".join(program.modules) or "no open diagrams"
    kernels = "; with Triton kernels" if program.backend == "triton" else ""
    print(f"wrote {out} ({names}{kernels})", file=sys.stderr)
    if program.backend == "triton":     # the vertices that keep torch code, and why (docs/gpu.md)
        for plan in program.plans.values():
            for v, what in coverage(plan):
                if what.startswith("torch code"):
                    print(f"note: {args.file}:{v.line}: `{v.outputs[0]} = {v.kind}(...)` keeps {what}",
                          file=sys.stderr)
    return EXIT_OK


# -- plan -----------------------------------------------------------------------

def _weights_headline(plan) -> str:
    """Internal weights (parameters), then external ones (forward arguments) with their shapes, by
    the names the generated module gives them (emit_torch.module_names)."""
    names = module_names(plan)
    owner = lambda v: v.weight_owner or v.outputs[0]  # noqa: E731
    weighted = [v for v in plan.vertices if v.weight_numel]
    internal = [v for v in weighted if not v.external]
    external = [v for v in weighted if v.external]
    parts = []
    if internal or not external:
        shapes = ", ".join(f"{names.weight_parameters[owner(v)]} [{v.weight_numel}]" for v in internal)
        parts.append(f"{plan.weight_numel} weights" + (f" ({shapes})" if shapes else ""))
    if external:
        rows = {"node": "V", "edge": "E"}
        shapes = [f"{names.weight_arguments[owner(v)]} "
                  f"[{rows.get(v.domain, '...') if plan.diagram.is_graph else '...'}, {v.weight_numel}]"
                  for v in external]
        parts.append(f"{sum(v.weight_numel for v in external)} external weights ({', '.join(shapes)})")
    return ", ".join(parts)


def format_plan(program, verbose: bool = False) -> str:
    lines = []
    for name, plan in program.plans.items():
        d = plan.emitted
        size = (f"graph diagram, V = {plan.nodes:,} nodes, E = {plan.edges:,} edges" if d.is_graph
                else f"batch {plan.batch}")
        lines.append(f"diagram {name} ({d.group_name}), {size}: {plan.n_paths} paths, "
                     f"{_weights_headline(plan)}")
        for note in plan.rewrites:
            lines.append(f"  rewrite: {note}")
        for step, v in enumerate(plan.vertices, 1):
            ext = (", external" if v.external else "") + (", symmetric" if v.symmetric_bases else "")
            args = ", ".join(v.inputs + ([v.endpoint] if v.endpoint else []))
            where = f", per {v.domain} ({v.rows:,} rows)" if v.domain else ""
            lines.append(f"  step {step}: {v.outputs[0]} = {v.kind}({args}) [{'paths=separate' if v.per_path else v.mode}{ext}]  "
                         f"(line {v.line}{where})")
            if v.kind in ("gather", "scatter"):
                writer = next((k for k, u in enumerate(plan.vertices, 1) if u.node == v.absorbed_by), None)
                done = f"done by step {writer}" if v.absorbed else f"FLOPs {v.flops:,}, modelled cost {v.cost:,}"
                lines.append(f"    {done}" if v.absorbed else f"    {done}, peak intermediate {_bytes(v.peak_bytes)}")
                continue
            if v.scatter_into:
                lines.append(f"    writes `{v.scatter_into}` on the nodes directly"
                             + (", weights applied there" if v.weights_on_nodes else ""))
            form = (f"operator blocks {len(v.operator_blocks)}" if v.operator_blocks
                    else f"symmetric pair form ({v.symmetric_pairs.slot_starts[-1]} pair products x_i x_j, "
                         f"{len(v.symmetric_pairs.blocks)} batched GEMMs)" if v.symmetric_pairs
                    else f"contractions {len(v.contractions)}")
            counts = f"paths {len(v.paths)}, weights {v.weight_numel}"
            if v.symmetric_bases:   # docs/language.md section 10: both weight counts
                ranks = " + ".join(str(b.rank) for b in v.symmetric_bases)
                counts = (f"symmetric basis {ranks} per channel (unreduced paths {v.unreduced_paths}), "
                          f"weights {v.weight_numel} (unreduced uuu {v.unreduced_weight_numel})")
            lines.append(f"    {counts}, {form}, "
                         f"FLOPs {v.flops:,} (naive per-path left-to-right {v.naive_flops:,}), "
                         f"modelled cost {v.cost:,} (naive {v.naive_cost:,}), peak intermediate "
                         f"{_bytes(v.peak_bytes)}")
            if verbose:
                for k in range(len(v.paths)):
                    lines.append(f"      path {k}: {_path_text(d, v, k)}")
            for c in v.contractions:
                order = " ; ".join(s.equation for s in c.steps)
                if c.edge_steps:
                    order = (" ; ".join(s.equation for s in c.edge_steps) + " ; sum into nodes ; "
                             + " ; ".join(s.equation for s in c.node_steps))
                terms = c.out_terms or (c.out_term,)
                label = f"term{'s' * (len(terms) > 1)} {','.join(map(str, terms))}"
                lines.append(f"      -> {label}: {len(c.paths)} path(s)  {c.equation}  order: {order}")
            for b in v.operator_blocks:
                og = v.output_groups[b.group]
                terms = ",".join(map(str, og.terms))
                lines.append(f"      -> input term {b.term} into term{'s' * (len(og.terms) > 1)} {terms}: "
                             f"{len(b.paths)} path(s)  {b.equation}  order: y @ K, weights on x, batched GEMM")
        ratio = plan.naive_flops / plan.flops if plan.flops else float("nan")
        lines.append(f"  total FLOPs {plan.flops:,} vs naive {plan.naive_flops:,} ({ratio:.2f}x)")
        gain = plan.naive_cost / plan.cost if plan.cost else float("nan")
        lines.append(f"  modelled cost {plan.cost:,} vs naive {plan.naive_cost:,} ({gain:.2f}x; "
                     "FLOPs plus memory written plus per-call overhead, see docs/planner.md)")
        if d.is_graph:
            written = plan_diagram(plan.diagram, plan.batch, graph=False)
            lines.append(f"  the block vertex by vertex as written: modelled cost {written.cost:,} "
                         f"({written.cost / plan.cost if plan.cost else float('nan'):.2f}x the plan), "
                         f"largest step {_bytes(max((v.peak_bytes for v in written.vertices), default=0))} "
                         f"vs {_bytes(max((v.peak_bytes for v in plan.vertices), default=0))}")
        lines.append("")
    closed = [d.name for d in program.analysis.diagrams if d.is_closed]
    if closed:
        lines.append(f"closed diagrams (no plan; see `fusionc eval`): {', '.join(closed)}")
    return "\n".join(lines).rstrip() + "\n"


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB" if n >= 2**10 else f"{n} B"


def cmd_plan(args) -> int:
    analysis = _load_checked(args.file)
    if analysis is None:
        return EXIT_ERRORS
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    program = compile_analysis(analysis, batch=args.batch)
    sys.stdout.write(format_plan(program, args.verbose))
    return EXIT_OK


# -- verify ---------------------------------------------------------------------

def cmd_verify(args) -> int:
    program = _compiled(args.file)
    if program is None:
        return EXIT_ERRORS
    status = EXIT_OK
    for name, cls in program.modules.items():
        err = equivariance_error(cls(), program.plans[name].diagram, program.plans[name], trials=args.trials)
        ok = err <= TOLERANCE
        status = status if ok else EXIT_ERRORS
        print(f"{name:<24} worst equivariance error {err:.2e}  {'ok' if ok else 'FAILED'}")
    if not program.modules:
        print("no open diagrams to verify")
    return status


# -- eval -----------------------------------------------------------------------

def cmd_eval(args) -> int:
    analysis = _load_checked(args.file)
    if analysis is None:
        return EXIT_ERRORS
    names = [d.name for d in analysis.diagrams]
    closed = [d.name for d in analysis.diagrams if d.is_closed]
    name = args.diagram
    if name is None:
        if len(closed) != 1:
            which = (f"its closed diagrams are {', '.join(closed)}" if closed else
                     f"it has no closed diagram (its diagrams: {', '.join(names) or 'none'})")
            raise UsageError(f"{args.file}: name the diagram to evaluate with --diagram NAME; {which}")
        name = closed[0]
    if name not in names:
        raise UsageError(f"no diagram `{name}` in {args.file}; it has {', '.join(names) or 'none'}")
    diagram = analysis.diagram(name)
    if not diagram.is_closed:
        print(f"error: diagram `{name}` is open (it has inputs or outputs), so it is a map, not a number; "
              f"`fusionc eval` needs a closed diagram\n  = help: compile it with `fusionc compile` instead",
              file=sys.stderr)
        return EXIT_ERRORS
    try:
        exact = evaluate_exact(diagram)
    except NotEvaluable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"{name} = {exact}")
    print(f"{name} ~ {float(exact)!r}")
    return EXIT_OK


# -- build: the main job ----------------------------------------------------------

def cmd_build(args) -> int:
    src = Path(args.directory)
    if not src.is_dir():
        raise UsageError(f"{src}: not a directory")
    return build_all(src, Path(args.output), current_limits())


def _register(sub, add_common) -> None:
    p = sub.add_parser("compile", help="write a standalone PyTorch module per open diagram")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT.py", help="output path (default: FILE with .py)")
    add_limits(p)
    p.add_argument("--backend", choices=("auto", "torch", "triton"), default="auto",
                   help="torch: PyTorch operations; triton: also Triton kernels for fuse vertices (docs/gpu.md); "
                        "auto (default): triton where CUDA is available and triton imports, else torch")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("plan", help="paths, weights, contraction order and FLOPs per diagram")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--batch", type=int, default=1024, help="batch size to plan for (default 1024)")
    p.add_argument("-v", "--verbose", action="store_true", help="list every path")
    add_limits(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("verify", help="compile, then check equivariance numerically")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--trials", type=int, default=4, help="random rotations per diagram (default 4)")
    add_limits(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("eval", help="exact value of a closed diagram")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--diagram", metavar="NAME",
                   help="the closed diagram to evaluate (needed only when the file has several)")
    add_limits(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("build", help="the main job: compile, render and verify every .fus file in a folder")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("-o", "--output", default="out", metavar="OUTDIR", help="where to write (default out/)")
    add_limits(p)
    p.set_defaults(func=cmd_build)


# -- fusionc render -------------------------------------------------------------

def _register_render(sub, add_common) -> None:
    p = sub.add_parser("render", help="draw diagrams as .svg, .png, .pdf or .dot",
                       description="Draw the diagrams of a .fus file (all in one picture by default).")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--diagram", action="append", metavar="NAME", default=None,
                   help="draw only this diagram (repeat for several)")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="output path; its extension (.svg .png .pdf .dot) picks the format "
                        "(default: FILE's name with .svg, in the current directory)")
    p.add_argument("--plan", action="store_true",
                   help="badge each vertex with its step in the planner's contraction order")
    add_common(p)
    p.set_defaults(func=cmd_render)


def cmd_render(args) -> int:
    out = args.output or (Path(args.file).stem + ".svg")
    try:
        _format_of(out)
    except UnsupportedFormat as exc:
        raise UsageError(str(exc)) from None
    steps_of = plan_steps if args.plan else None
    analysis = _load_checked(args.file, args.format)
    if analysis is None:
        return EXIT_ERRORS
    if not analysis.diagrams:
        raise UsageError(f"{args.file}: there is no diagram to draw")
    try:
        chosen = select(analysis.diagrams, args.diagram)
    except KeyError as exc:
        raise UsageError(f"{args.file}: {exc.args[0]}") from None
    plan = {d.name: steps_of(d) for d in chosen} if steps_of else None
    try:
        written = render(chosen, out, plan_steps=plan)
    except RenderError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{out}: {exc.strerror or exc}") from None
    if args.format == "json":
        print(json.dumps({"output": str(written)}))
    else:
        print(written)
    return EXIT_OK


REGISTER = [_register_render, _register]
