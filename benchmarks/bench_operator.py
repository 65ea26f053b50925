"""The operator form against the pairwise plans, both forced, on a grid of binary fuse vertices.

    python benchmarks/bench_operator.py            # writes docs/performance.md (table between markers)
    python benchmarks/bench_operator.py --print    # prints only

For each case: forward and forward+backward times of the module compiled with only the operator
form (plan.OperatorBlock) and with only the pairwise contractions, float32, 2 threads, in one
process; their ratio; the ratio the cost model predicts (unscaled); and which form the planner
picks with plan.OPERATOR_COST_SCALE.  The scale is chosen so that the picks follow the measured
ratios; rerun this after changing the cost model.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_tensor_product import timeit, write_section  # noqa: E402
from fusionlang.backend import plan as planner  # noqa: E402
from fusionlang import analyze  # noqa: E402
from fusionlang.api import compile_analysis, compile_source  # noqa: E402

REPEAT = 15
GRID = [  # (mul, l of sh, mode, external, batch)
    (4, 2, "uvu", False, 1024), (8, 2, "uvu", False, 1024), (16, 2, "uvu", False, 1024),
    (16, 2, "uvu", True, 1024), (16, 3, "uvu", False, 1024), (64, 1, "uvu", False, 1024),
    (32, 2, "uvu", False, 4096), (128, 3, "uvu", False, 1024),
    (8, 2, "uvw", False, 1024), (32, 2, "uvw", False, 4096),
]


def source(mul, l, mode, external):
    option = f"[weights={mode}{', external' if external else ''}]"
    return (f"group O3\ndiagram B {{\n in h : {mul}x(0e + 1o + 2e)\n in y : sh({l})\n"
            f" out m : {mul}x(0e + 1o + 2e)\n m = fuse(h, y) {option}\n}}\n")


def compiled(text, form):
    """The program compiled with one form forced ("operator" or "pairwise")."""
    return compile_analysis(analyze(text), form=form)


def modelled_costs(diagram, batch):
    """(operator form, pairwise plan): the cost model's unscaled estimates at this batch."""
    return tuple(planner.plan_diagram(diagram, batch, form).cost for form in ("operator", "pairwise"))


def timings(program, batch):
    module = next(iter(program.modules.values()))()
    plan = next(iter(program.plans.values()))
    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(batch, plan.diagram.irreps(w).dim, generator=gen) for w in plan.diagram.inputs]
    args += [torch.randn(batch, v.weight_numel, generator=gen) for v in plan.vertices if v.external and v.weight_numel]
    with torch.no_grad():
        forward = timeit(lambda: module(*args), REPEAT)
    grads = [a.clone().requires_grad_() for a in args]
    backward = timeit(lambda: module(*grads).pow(2).sum().backward(), REPEAT)
    return forward * 1e3, backward * 1e3


def main():
    torch.set_num_threads(2)
    lines = ["| mul | sh | mode | batch | fwd operator / pairwise (ms) | fwd+bwd operator / pairwise (ms) | "
             "measured ratio (fwd+bwd) | modelled ratio (unscaled) | planner picks |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for mul, l, mode, external, batch in GRID:
        text = source(mul, l, mode, external)
        op_f, op_b = timings(compiled(text, "operator"), batch)
        pw_f, pw_b = timings(compiled(text, "pairwise"), batch)
        diagram = next(iter(compile_source(text).plans.values())).diagram
        op_cost, pw_cost = modelled_costs(diagram, batch)
        pick = "operator" if planner.plan_diagram(diagram, batch).vertices[0].operator_blocks else "pairwise"
        lines.append(f"| {mul} | {l} | {mode}{' ext' if external else ''} | {batch} | {op_f:.2f} / {pw_f:.2f} | "
                     f"{op_b:.2f} / {pw_b:.2f} | {op_b / pw_b:.2f} | {op_cost / pw_cost:.2f} | {pick} |")
        print(lines[-1], flush=True)
    if "--print" not in sys.argv:
        write_section("operator-form", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
