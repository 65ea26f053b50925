"""The operator form of the planner (plan.OperatorBlock): a binary uvu / uvw fuse whose second input
has only multiplicity-1 terms, such as sh(l), evaluated as y @ K, weights on x, one batched GEMM.

Each case asserts that the planner really took that form, so these tests cannot pass on the
pairwise plans alone.
"""

import pytest
import torch

from fusionlang.backend import plan as planner
from fusionlang.api import compile_source
from fusionlang.verify import equivariance_error
from helpers_codegen import float64_default, module_vs_reference  # noqa: F401 (an autouse fixture)

o3 = pytest.importorskip("e3nn.o3")


def fuse_source(group, h, y, out, mode, external=False):
    option = f"[weights={mode}{', external' if external else ''}]"
    return f"group {group}\ndiagram T {{\n in h : {h}\n in y : {y}\n out m : {out}\n m = fuse(h, y) {option}\n}}\n"


def operator_program(text):
    program = compile_source(text)
    vertex = program.plans["T"].vertices[0]
    assert vertex.operator_blocks and not vertex.contractions, "the planner did not take the operator form"
    return program


# x terms of several multiplicities, output terms of several multiplicities (uvw), sh-like second inputs.
E3NN_CASES = [
    ("32x0e + 32x1o + 32x2e", "1x0e + 1x1o + 1x2e", "32x0e + 32x1o + 32x2e", "uvu"),
    ("16x0e + 8x1o", "1x1o", "16x1o + 8x0e + 8x1e + 8x2e", "uvu"),
    ("16x0e + 16x1o + 16x2e + 16x3o", "1x0e + 1x1o + 1x2e + 1x3o", "16x0e + 16x1o + 16x2e + 16x3o", "uvu"),
    ("32x0e + 32x1o + 32x2e", "1x0e + 1x1o + 1x2e", "32x0e + 32x1o + 32x2e", "uvw"),
    ("16x0e + 8x1o", "1x0e + 1x1o + 1x2e", "8x0e + 16x1o + 4x2e + 16x1e", "uvw"),
]


@pytest.mark.parametrize("h,y,out,mode", E3NN_CASES)
@pytest.mark.parametrize("external", [False, True])
def test_operator_form_equals_e3nn(h, y, out, mode, external):
    if mode == "uvw" and external:
        pytest.skip("per-sample uvw weights keep the pairwise plans")
    program = operator_program(fuse_source("O3", h, y, out, mode, external))
    ours = program.modules["T"]().double()
    a, b, c = o3.Irreps(h), o3.Irreps(y), o3.Irreps(out)
    ins = [(i, j, k, mode, True) for i, (_, x1) in enumerate(a) for j, (_, x2) in enumerate(b)
           for k, (_, x3) in enumerate(c) if x3 in x1 * x2]
    tp = o3.TensorProduct(a, b, c, ins, internal_weights=not external, shared_weights=not external).double()
    gen = torch.Generator().manual_seed(len(h) + len(out))
    x1 = torch.randn(6, a.dim, generator=gen)
    x2 = torch.randn(6, b.dim, generator=gen)
    if external:
        w = torch.randn(6, tp.weight_numel, generator=gen)
        expected, got = tp(x1, x2, w), ours(x1, x2, w)
    else:
        with torch.no_grad():
            ours.m_weight.copy_(torch.randn(tp.weight_numel, generator=gen))
            tp.weight.copy_(ours.m_weight)
        expected, got = tp(x1, x2), ours(x1, x2)
    assert (got - expected).abs().max() / expected.abs().max().clamp_min(1.0) < 1e-10


REFERENCE_CASES = [
    ("O3", "16x0e + 16x1o + 16x2e", "sh(2)", "16x0e + 16x1o + 16x2e", "uvu"),
    ("SO3", "8x0 + 8x1 + 8x2", "1x1 + 1x2", "8x0 + 8x1 + 8x2 + 8x3", "uvu"),
    ("SU2", "16x1/2 + 16x3/2", "1x1 + 1x1/2 + 1x0", "16x1/2 + 16x1 + 16x3/2", "uvu"),
    ("SU2", "16x1/2 + 8x1", "1x1/2 + 1x1", "8x1/2 + 16x1 + 8x3/2", "uvw"),
]


@pytest.mark.parametrize("group,h,y,out,mode", REFERENCE_CASES)
@pytest.mark.parametrize("external", [False, True])
def test_operator_form_matches_reference_and_is_equivariant(group, h, y, out, mode, external):
    if mode == "uvw" and external:
        pytest.skip("per-sample uvw weights keep the pairwise plans")
    program = operator_program(fuse_source(group, h, y, out, mode, external))
    assert module_vs_reference(program, "T", batch=3, seed=1) < 1e-10
    plan = program.plans["T"]
    assert equivariance_error(program.modules["T"](), plan.diagram, plan) < 1e-10


def test_operator_form_gradcheck_and_double_backward():
    program = operator_program(fuse_source("O3", "8x0e + 8x1o + 8x2e", "sh(2)", "8x0e + 8x1o", "uvu", True))
    module = program.modules["T"]().double()
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(2, 72, generator=gen, requires_grad=True)
    y = torch.randn(2, 9, generator=gen, requires_grad=True)
    w = torch.randn(2, module_weight_numel(program), generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(module, (h, y, w))
    assert torch.autograd.gradgradcheck(module, (h, y, w))


def module_weight_numel(program):
    return program.plans["T"].vertices[0].weight_numel


def test_operator_form_code_has_no_loop_over_paths():
    """One GEMM with y, one multiply and one batched GEMM per input term, whatever the path count."""
    program = operator_program(fuse_source("O3", "32x0e + 32x1o + 32x2e + 32x3o", "sh(3)",
                                           "32x0e + 32x1o + 32x2e + 32x3o", "uvu"))
    vertex = program.plans["T"].vertices[0]
    assert len(vertex.paths) > 20 and len(vertex.operator_blocks) == 4
    body = program.python.split("def forward")[1]
    assert body.count("torch.bmm(") + body.count("torch.baddbmm(") == 4
    assert "einsum" not in body


@pytest.mark.parametrize("mode,external", [("uvw", True), ("uuu", False), ("none", False)])
def test_other_vertices_keep_the_pairwise_plans(mode, external):
    y = "8x0e + 8x1o" if mode == "uuu" else "1x0e + 1x1o"
    program = compile_source(fuse_source("O3", "8x0e + 8x1o", y, "8x0e + 8x1o", mode, external))
    vertex = program.plans["T"].vertices[0]
    assert vertex.contractions and not vertex.operator_blocks


@pytest.mark.parametrize("mul", [1, 4, 32])
def test_the_cheaper_form_by_the_scaled_cost_model_is_taken(mul):
    """The planner takes the operator form exactly where its cost, scaled by OPERATOR_COST_SCALE, is
    below the pairwise plan's; either way the vertex reports the chosen form's modelled cost."""
    text = fuse_source("O3", f"{mul}x0e + {mul}x1o + {mul}x2e", "sh(2)", f"{mul}x0e + {mul}x1o + {mul}x2e", "uvu")
    d = compile_source(text).plans["T"].diagram
    operator = planner.plan_diagram(d, form="operator").vertices[0]
    pairwise = planner.plan_diagram(d, form="pairwise").vertices[0]
    assert operator.operator_blocks and pairwise.contractions and not pairwise.operator_blocks
    chosen = planner.plan_diagram(d).vertices[0]
    expected = operator if operator.cost * planner.OPERATOR_COST_SCALE < pairwise.cost else pairwise
    assert bool(chosen.operator_blocks) == bool(expected.operator_blocks)
    assert chosen.cost == expected.cost


def test_three_body_fuse_keeps_the_pairwise_plans():
    text = ("group O3\ndiagram T {\n in h : 16x(0e + 1o + 2e)\n in y1 : sh(2)\n in y2 : sh(2)\n"
            " out m : 16x(0e + 1o + 2e)\n m = fuse(h, y1, y2) [weights=uvu]\n}\n")
    vertex = compile_source(text).plans["T"].vertices[0]
    assert vertex.contractions and not vertex.operator_blocks
