"""Graph diagrams under the Triton backend: gather -> fuse -> scatter as one kernel, through Triton's
interpreter against the torch backend (docs/gpu.md, "Graph chains").

Each chain's kernel reads the gathered node rows through edge_index, keeps the edge message in
registers and adds it into the receiving nodes atomically; its backward kernels gather the output
gradient at the scatter's end and add the node-feature gradients atomically.  Checked: forward,
every gradient, double backward (the torch-form fallback), on edge sets with repeated edges,
self-loops, isolated nodes and none at all, in float64 (1e-12) and float32 (1e-5).
"""
from __future__ import annotations

import os
import sys

# The interpreter must be chosen before triton is first imported.
_IMPORTED_WITHOUT_INTERPRETER = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

triton = pytest.importorskip("triton")

from fusionlang.api import compile_source  # noqa: E402

pytestmark = pytest.mark.skipif(
    _IMPORTED_WITHOUT_INTERPRETER,
    reason="triton was imported before TRITON_INTERPRET=1 was set; run this file on its own")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}
NODES = 5


def graph(node_in: dict[str, str], edge_in: dict[str, str], out: str, body: list[str]) -> str:
    lines = ["group O3", "diagram G {"]
    lines += [f"    in  {w} : {irreps} per node" for w, irreps in node_in.items()]
    lines += [f"    in  {w} : {irreps} per edge" for w, irreps in edge_in.items()]
    lines += [f"    out a : {out} per node"] + [f"    {line}" for line in body] + ["}"]
    return "\n".join(lines) + "\n"


CASES = {
    # the MACE convolution's shape: sender features x edge attributes, external per-edge weights
    "uvu-external": graph({"h": "2x(0e + 1o)"}, {"y": "sh(2)"}, "2x(0e + 1o + 2e)",
                          ["wire hs : 2x(0e + 1o) = gather(h, sender)",
                           "wire m : 2x(0e + 1o + 2e) = fuse(hs, y) [weights=uvu, external]",
                           "a = scatter(m, receiver)"]),
    # shared weights (the torch planner may apply them on the nodes; the chain keeps them per edge)
    "uvu-internal": graph({"h": "3x(0e + 1o)"}, {"y": "sh(1)"}, "3x(0e + 1o + 1e)",
                          ["wire hs : 3x(0e + 1o) = gather(h, sender)",
                           "wire m : 3x(0e + 1o + 1e) = fuse(hs, y) [weights=uvu]",
                           "a = scatter(m, receiver)"]),
    # both ends' features: two gathers, the scatter at the sender
    "uvw-two-ends": graph({"h": "2x0e + 1o"}, {}, "2x0e + 2x1o",
                          ["wire hs : 2x0e + 1o = gather(h, sender)",
                           "wire hr : 2x0e + 1o = gather(h, receiver)",
                           "wire m : 2x0e + 2x1o = fuse(hs, hr) [weights=uvw]",
                           "a = scatter(m, sender)"]),
    "uuu": graph({"h": "2x(0e + 1o)"}, {"e": "2x(0e + 1o)"}, "2x(0e + 1o + 1e)",
                 ["wire hr : 2x(0e + 1o) = gather(h, receiver)",
                  "wire m : 2x(0e + 1o + 1e) = fuse(e, hr) [weights=uuu]",
                  "a = scatter(m, receiver)"]),
    "none": graph({"h": "2x(0e + 1o)"}, {"y": "sh(1)"}, "2x0e + 2x1o + 2x1e + 2x2e",
                  ["wire hs : 2x(0e + 1o) = gather(h, sender)",
                   "wire m : 2x0e + 2x1o + 2x1e + 2x2e = fuse(hs, y) [weights=none]",
                   "a = scatter(m, receiver)"]),
    "three-body": graph({"h": "2x(0e + 1o)"}, {"y": "sh(1)"}, "2x(0e + 1o)",
                        ["wire hs : 2x(0e + 1o) = gather(h, sender)",
                         "wire m : 2x(0e + 1o) = fuse(hs, y, y) [weights=uvu, external]",
                         "a = scatter(m, receiver)"]),
    # the same gathered wire read twice (uuu aliasing)
    "uuu-square": graph({"h": "2x(0e + 1o)"}, {}, "2x(0e + 1o)",
                        ["wire hs : 2x(0e + 1o) = gather(h, sender)",
                         "wire m : 2x(0e + 1o) = fuse(hs, hs) [weights=uuu, external]",
                         "a = scatter(m, receiver)"]),
}

EDGES = {
    # node 4 is isolated everywhere but "complete"; 2 receives three times (one edge repeated)
    "repeated": [[0, 1, 1, 3, 3, 0], [1, 0, 2, 2, 2, 1]],
    "self-loops": [[0, 2, 2, 3], [0, 2, 1, 3]],
    "complete": [[i for i in range(NODES) for _ in range(NODES)], [j for _ in range(NODES) for j in range(NODES)]],
    "none": [[], []],
}


def build(case: str, dtype, edges, seed: int = 0):
    text = CASES[case]
    reference = compile_source(text, backend="torch").modules["G"]().to(dtype)
    program = compile_source(text, backend="triton")
    module = program.modules["G"]().to(dtype)
    module.load_state_dict(reference.state_dict())
    plan = program.plans["G"]
    d = plan.diagram
    edge_index = torch.tensor(edges, dtype=torch.long).reshape(2, -1)
    gen = torch.Generator().manual_seed(seed)
    rows = {"node": NODES, "edge": edge_index.shape[1]}
    args = [torch.randn(rows[d.domain(w)], d.irreps(w).dim, generator=gen, dtype=dtype) for w in d.inputs]
    args += [torch.randn(rows["edge"], v.weight_numel, generator=gen, dtype=dtype)
             for v in plan.vertices if v.external and v.weight_numel]
    return reference, module, program, args, edge_index


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("edges", sorted(EDGES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_chain_forward_and_backward_equal_torch_backend(case, edges, dtype):
    reference, module, program, args, edge_index = build(case, dtype, EDGES[edges])
    leaves = [a.clone().requires_grad_() for a in args]
    mine = [a.clone().requires_grad_() for a in args]
    expected, got = reference(*leaves, edge_index), module(*mine, edge_index)
    if edge_index.shape[1]:
        assert "_Fuse0Backward" in type(got.grad_fn).__name__      # the kernels ran, not the torch form
    torch.testing.assert_close(got, expected, **TOL[dtype])
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    expected_grads = torch.autograd.grad(expected, leaves + list(reference.parameters()), grad, allow_unused=True)
    got_grads = torch.autograd.grad(got, mine + list(module.parameters()), grad, allow_unused=True)
    for leaf, e, g in zip(leaves + list(reference.parameters()), expected_grads, got_grads):
        e = torch.zeros_like(leaf) if e is None else e      # E = 0: nothing reaches the edge inputs
        g = torch.zeros_like(leaf) if g is None else g
        torch.testing.assert_close(g, e, **TOL[dtype])


@pytest.mark.parametrize("case", ["uvu-external", "uvw-two-ends", "three-body"])
def test_chain_double_backward_equals_torch_backend(case):
    reference, module, _, args, edge_index = build(case, torch.float64, EDGES["repeated"])

    def second_order(model):
        inputs = [a.clone().requires_grad_() for a in args]
        out = model(*inputs, edge_index)
        first = torch.autograd.grad(out.pow(2).sum(), inputs + list(model.parameters()), create_graph=True)
        penalty = sum(g.pow(2).sum() for g in first)
        return torch.autograd.grad(penalty, inputs + list(model.parameters()))

    for e, g in zip(second_order(reference), second_order(module)):
        torch.testing.assert_close(g, e, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("case", sorted(CASES))
def test_chain_is_one_kernel_without_an_edge_message(case):
    """No index_select, index_add or [E, dim] message in the module: the kernel reads the node rows
    through edge_index and adds into the nodes (atomically); its backward adds the gathered inputs'
    gradients atomically as well."""
    program = compile_source(CASES[case], backend="triton")
    python = program.python
    forward = python[python.index("class G("):]
    assert "index_select" not in forward and "_scatter_add" not in forward
    assert "one Triton kernel with its gather" in forward
    kernels = python.split("@triton.jit")[1:]
    assert all("tl.atomic_add(out" in k for k in kernels if "_forward(" in k.split("\n")[1])
    assert any("tl.atomic_add(gin" in k for k in kernels if "_backward" in k.split("\n")[1])


def test_gather_read_elsewhere_is_kept():
    """A gathered wire that another vertex also reads is still gathered for that reader."""
    text = graph({"h": "2x(0e + 1o)"}, {"y": "sh(1)"}, "2x(0e + 1o)",
                 ["wire hs : 2x(0e + 1o) = gather(h, sender)",
                  "wire m : 2x(0e + 1o) = fuse(hs, y) [weights=uvu, external]",
                  "wire k : 2x(0e + 1o) = fuse(hs, y, y) [weights=none]",     # torch code: n-ary none
                  "wire s : 2x(0e + 1o) = fuse(m, k) [weights=uuu]",
                  "a = scatter(s, receiver)"])
    reference = compile_source(text, backend="torch").modules["G"]().double()
    program = compile_source(text, backend="triton")
    module = program.modules["G"]().double()
    module.load_state_dict(reference.state_dict())
    gen = torch.Generator().manual_seed(5)
    edge_index = torch.tensor(EDGES["repeated"])
    h = torch.randn(NODES, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(6, program.plans["G"].vertices[1].weight_numel, generator=gen, dtype=torch.float64)
    forward = program.python[program.python.index("class G("):]
    assert "hs = h.index_select(0, sender)" in forward
    assert "one Triton kernel with its gather (_fuse0)" in forward and "one Triton kernel with its scatter" in forward
    torch.testing.assert_close(module(h, y, w, edge_index), reference(h, y, w, edge_index), rtol=1e-12, atol=1e-12)


def test_chain_on_cpu_without_interpreter_uses_the_torch_form():
    reference, module, _, args, edge_index = build("uvu-external", torch.float64, EDGES["repeated"])
    namespace = module.forward.__globals__
    namespace["_INTERPRET"] = False
    try:
        out = module(*args, edge_index)
        assert out.grad_fn is None or "_Fuse0Backward" not in type(out.grad_fn).__name__
        torch.testing.assert_close(out, reference(*args, edge_index), rtol=1e-12, atol=1e-12)
    finally:
        namespace["_INTERPRET"] = True


def test_chain_int32_edge_index():
    reference, module, _, args, edge_index = build("uvu-external", torch.float64, EDGES["repeated"])
    edge_index = edge_index.to(torch.int32)
    torch.testing.assert_close(module(*args, edge_index), reference(*args, edge_index), rtol=1e-12, atol=1e-12)


def test_chain_kernels_compile_for_a_gpu_target():
    """Compiled Triton (sm_90, no GPU needed) accepts the chains' indexed loads and atomic adds, which
    the interpreter does not check (benchmarks/gpu/compile_check.py, in a process without
    TRITON_INTERPRET); every kernel without spills."""
    import json
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    sources = [CASES[k] for k in ("uvu-external", "uvw-two-ends", "none", "three-body")]
    code = ("import json, sys; from benchmarks.gpu.compile_check import check; "
            "rows = [r for s in json.load(sys.stdin) for r in check(s, 90)]; print(json.dumps(rows))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code], input=json.dumps(sources), capture_output=True, text=True,
                         cwd=root, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(rows) == 9       # forward and backward each; uvw: one backward per input
    assert all(r["registers"] > 0 and r["stack"] == 0 for r in rows), rows


def test_chain_under_torch_compile_traces_the_torch_form():
    torch._dynamo.reset()
    reference, module, _, args, edge_index = build("uvu-external", torch.float64, EDGES["repeated"])
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args, edge_index), reference(*args, edge_index), rtol=1e-12, atol=1e-12)
