"""The Triton backend against the torch backend, through Triton's interpreter (TRITON_INTERPRET=1).

Every binary weight mode (uvu, uvw, uuu, none) with internal and external weights, the n-ary
uvu and uuu vertices, float32 and float64: forward, gradients of every input and of the weights
(the generated backward kernels), and double backward (the torch-form fallback).  Sizes are
tiny because the interpreter runs kernels in numpy, one program at a time.
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
from fusionlang.triton_backend import select_backend  # noqa: E402

pytestmark = pytest.mark.skipif(
    _IMPORTED_WITHOUT_INTERPRETER,
    reason="triton was imported before TRITON_INTERPRET=1 was set; run this file on its own")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def diagram(inputs: dict[str, str], out: str, call: str, group: str = "O3", name: str = "T") -> str:
    lines = [f"group {group}", f"diagram {name} {{"]
    lines += [f"    in {w} : {irreps}" for w, irreps in inputs.items()]
    lines += [f"    out m : {out}", f"    m = {call}", "}"]
    return "\n".join(lines) + "\n"


CASES = {
    # binary uvu: the edge message; a second input with multiplicity 2 loops over its channels
    "uvu": diagram({"x": "3x(0e + 1o + 2e)", "y": "sh(2)"}, "3x(0e + 1o + 2e)", "fuse(x, y) [weights=uvu]"),
    "uvu-mul2": diagram({"x": "2x(0e + 1o)", "y": "2x0e + 1o"}, "2x(0e + 1o + 1e)", "fuse(x, y) [weights=uvu]"),
    "uvu-external": diagram({"x": "3x(0e + 1o)", "y": "sh(3)"}, "3x(0e + 1o + 2e + 3o)",
                            "fuse(x, y) [weights=uvu, external]"),
    # uvw: channels mixed, different multiplicities per term; the same wire twice
    "uvw": diagram({"x": "2x0e + 3x1o", "y": "0e + 2x1o"}, "3x0e + 2x1o + 1x2e", "fuse(x, y) [weights=uvw]"),
    "uvw-external": diagram({"x": "2x0e + 1o", "y": "2x1o"}, "2x0e + 3x1o", "fuse(x, y) [weights=uvw, external]"),
    "uvw-square": diagram({"x": "2x(0e + 1o + 2e)"}, "2x(0e + 1o + 2e)", "fuse(x, x) [weights=uvw]"),
    # uuu: channels elementwise
    "uuu": diagram({"x": "3x(0e + 1o + 2e)", "y": "3x(0e + 1o)"}, "3x(0e + 1o + 2e)", "fuse(x, y) [weights=uuu]"),
    "uuu-external": diagram({"x": "3x(0e + 1o)", "y": "3x(1o + 2e)"}, "3x(0e + 1o + 1e)",
                            "fuse(x, y) [weights=uuu, external]"),
    # none: output channel (u, v) = u * mul_y + v
    "none": diagram({"x": "2x(0e + 1o)", "y": "3x0e + 3x1o"}, "6x0e + 6x1o + 6x1e + 6x2e",
                    "fuse(x, y) [weights=none]"),
    "none-square": diagram({"x": "2x(0e + 1o)"}, "4x0e + 4x1e", "fuse(x, x) [weights=none]"),
    "none-single": diagram({"x": "0e + 1o + 2e", "y": "1o + 2e"}, "0e + 1o + 1e + 2e + 3o", "fuse(x, y)"),
    # paths=separate (per-path output): one output term per path, in e3nn's FullTensorProduct order
    "separate": diagram({"x": "2x(0e + 1o)", "y": "0e + 2x1o"}, "6x0e + 6x1o + 4x1e + 4x2e",
                        "fuse(x, y) [paths=separate]"),
    # n-ary
    "three-body": diagram({"h": "2x(0e + 1o)", "y1": "sh(2)", "y2": "sh(1)"}, "2x(0e + 1o)",
                          "fuse(h, y1, y2) [weights=uvu]"),
    "three-body-external": diagram({"h": "2x(0e + 1o)", "y1": "sh(1)", "y2": "sh(1)"}, "2x(0e + 1o + 2e)",
                                   "fuse(h, y1, y2) [weights=uvu, external]"),
    "uvw-3": diagram({"h": "2x0e + 1o", "y1": "0e + 2x1o", "y2": "2x1o"}, "2x0e + 3x1o + 1e",
                     "fuse(h, y1, y2) [weights=uvw]"),
    "uvw-3-external": diagram({"h": "2x(0e + 1o)", "y1": "1o"}, "0e + 2x1o + 2e",
                              "fuse(h, y1, h) [weights=uvw, external]"),
    "product-basis": diagram({"A": "2x(0e + 1o + 2e)"}, "2x(0e + 1o)", "fuse(A, A, A) [weights=uuu]"),
    "product-basis-external": diagram({"A": "2x(0e + 1o)", "B": "2x(0e + 1o)"}, "2x(0e + 1o)",
                                      "fuse(A, B, A) [weights=uuu, external]"),
    # symmetric fuse (LANGUAGE.md section 10): a uuu fuse over the basis functions
    "symmetric-2": diagram({"A": "2x(0e + 1o + 2e)"}, "2x(0e + 1o + 2e)", "fuse(A, A) [weights=uuu, symmetric]"),
    "symmetric-3": diagram({"A": "2x(0e + 1o + 2e)"}, "2x(0e + 1o)", "fuse(A, A, A) [weights=uuu, symmetric]"),
    "symmetric-4": diagram({"A": "2x(0e + 1o)"}, "2x0e + 2x2e", "fuse(A, A, A, A) [weights=uuu, symmetric]"),
    # SO3 (no parity)
    "so3": diagram({"x": "2x(0 + 1 + 2)", "y": "0 + 1"}, "2x(0 + 1 + 2)", "fuse(x, y) [weights=uvu]", group="SO3"),
}


def build(text: str, dtype, seed: int = 0):
    torch_program = compile_source(text, backend="torch")
    triton_program = compile_source(text, backend="triton")
    reference = torch_program.modules["T"]().to(dtype)
    module = triton_program.modules["T"]().to(dtype)
    assert [n for n, _ in module.named_parameters()] == [n for n, _ in reference.named_parameters()]
    module.load_state_dict(dict(reference.named_parameters()), strict=False)
    plan = torch_program.plans["T"]
    gen = torch.Generator().manual_seed(seed)
    args = [torch.randn(5, plan.emitted.irreps(w).dim, generator=gen, dtype=dtype) for w in plan.diagram.inputs]
    for v in plan.vertices:
        if v.external and v.weight_numel:
            args.append(torch.randn(5, v.weight_numel, generator=gen, dtype=dtype))
    return reference, module, triton_program, args


def kernels_of(program) -> dict:
    namespace = next(iter(program.modules.values())).forward.__globals__
    return {k: v for k, v in namespace.items() if k.startswith("_fuse") and ("_forward" in k or "_backward" in k)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_backward_equal_torch_backend(case, dtype):
    reference, module, program, args = build(CASES[case], dtype)
    kernels = kernels_of(program)
    assert kernels and all(type(k).__name__ == "InterpretedFunction" for k in kernels.values())
    leaves = [a.clone().requires_grad_() for a in args]
    mine = [a.clone().requires_grad_() for a in args]
    expected = reference(*leaves)
    got = module(*mine)
    assert expected.shape == got.shape
    torch.testing.assert_close(got, expected, **TOL[dtype])
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    params = list(reference.parameters())
    expected_grads = torch.autograd.grad(expected, leaves + params, grad)
    got_grads = torch.autograd.grad(got, mine + list(module.parameters()), grad)
    for e, g in zip(expected_grads, got_grads):
        torch.testing.assert_close(g, e, **TOL[dtype])


@pytest.mark.parametrize("case", ["uvu", "uvw-external", "uuu", "none", "three-body", "product-basis",
                                  "symmetric-3", "uvw-3-external"])
def test_double_backward_equals_torch_backend(case):
    reference, module, _, args = build(CASES[case], torch.float64)

    def second_order(model, inputs):
        inputs = [a.clone().requires_grad_() for a in inputs]
        out = model(*inputs)
        first = torch.autograd.grad(out.pow(2).sum(), inputs + list(model.parameters()), create_graph=True)
        penalty = sum(g.pow(2).sum() for g in first)
        return torch.autograd.grad(penalty, inputs + list(model.parameters()))

    for e, g in zip(second_order(reference, args), second_order(module, args)):
        torch.testing.assert_close(g, e, rtol=1e-11, atol=1e-11)


def test_kernels_run_in_the_autograd_function():
    """The module's fuse vertex goes through the generated autograd.Function (not the torch form)."""
    _, module, program, args = build(CASES["uvu"], torch.float64)
    namespace = module.forward.__globals__
    out = namespace["_fuse0"](args[0].requires_grad_(), args[1], module.m_weight)
    assert out.grad_fn is not None and "_Fuse0Backward" in type(out.grad_fn).__name__


def test_cpu_without_interpreter_uses_the_torch_form():
    reference, module, _, args = build(CASES["uvu-external"], torch.float64)
    namespace = module.forward.__globals__
    namespace["_INTERPRET"] = False
    try:
        out = module(*args)
        assert out.grad_fn is None or "_Fuse0Backward" not in type(out.grad_fn).__name__
        torch.testing.assert_close(out, reference(*args), rtol=1e-12, atol=1e-12)
    finally:
        namespace["_INTERPRET"] = True


def test_atomic_weight_gradients_equal_partial_sums():
    """Past _PARTIAL_LIMIT the internal-weight gradient is summed atomically; same numbers."""
    reference, module, program, args = build(CASES["uvw"], torch.float64)
    namespace = module.forward.__globals__
    grads = []
    for limit in (1 << 22, 0):
        namespace["_PARTIAL_LIMIT"] = limit
        module.zero_grad()
        module(*args).sum().backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    reference(*args).sum().backward()
    for atomic, partial, expected in zip(grads[1], grads[0], [p.grad for p in reference.parameters()]):
        torch.testing.assert_close(partial, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(atomic, expected, rtol=1e-12, atol=1e-12)


def test_many_programs_and_leading_batch_dimensions():
    """More rows than one program holds (masks on the last block) and [2, 33, dim] inputs."""
    reference, module, program, _ = build(CASES["uvu-external"], torch.float64)
    numel = program.plans["T"].vertices[0].weight_numel
    gen = torch.Generator().manual_seed(3)
    x, y, w = (torch.randn(2, 33, d, generator=gen, dtype=torch.float64) for d in (12, 16, numel))
    torch.testing.assert_close(module(x, y, w), reference(x, y, w), rtol=1e-12, atol=1e-12)


def test_empty_batch():
    reference, module, _, args = build(CASES["uvw"], torch.float64)
    empty = [a[:0].clone().requires_grad_() for a in args]
    out = module(*empty)
    assert out.shape == reference(*[a[:0] for a in args]).shape
    out.sum().backward()
    assert all(e.grad is not None and e.grad.shape == e.shape for e in empty)
    assert torch.all(module.m_weight.grad == 0)


MIXED = """group O3
diagram T {
    in x : 2x(0e + 1o)
    in y : sh(1)
    wire t : 2x(0e + 1o) = fuse(x, y) [weights=uvu]
    out m : 3x0e + 1o
    m = linear(t)
}
"""
SYMMETRIC = diagram({"A": "2x(0e + 1o)"}, "2x(0e + 1o)", "fuse(A, A, A) [weights=uuu, symmetric]")


def test_mixed_diagram_keeps_torch_code_for_other_vertices():
    reference, module, program, args = build(MIXED, torch.float64)
    assert "Triton kernels (_fuse0)" in program.python and "keeps torch code: linear" in program.python
    torch.testing.assert_close(module(*args), reference(*args), rtol=1e-12, atol=1e-12)


def test_su2_falls_back_to_torch_code():
    text = "group SU2\ndiagram T {\n    in a : 1/2\n    in b : 1/2\n    out m : 0 + 1\n    m = fuse(a, b)\n}\n"
    program = compile_source(text, backend="triton")
    assert "@triton.jit" not in program.python and "SU2 tensors are complex" in program.python


def test_generated_source_is_standalone_and_deterministic():
    first = compile_source(CASES["three-body"], backend="triton").python
    assert first == compile_source(CASES["three-body"], backend="triton").python
    imports = sorted({line.split()[1] for line in first.splitlines() if line.startswith(("import ", "from "))})
    assert imports == ["os", "torch", "triton", "triton.language"]
    # coupling coefficients are literals in the kernels: no coupling tensor is loaded there
    kernels = [block for block in first.split("@triton.jit")[1:]]
    assert all("coupling" not in k.split("\n\n\n")[0] for k in kernels)


def test_backend_selection():
    assert select_backend("torch") == "torch"
    assert select_backend("triton") == "triton"
    assert select_backend("auto") == ("triton" if torch.cuda.is_available() else "torch")
    with pytest.raises(ValueError, match="unknown backend"):
        compile_source(CASES["uvu"], backend="cuda")
    assert compile_source(CASES["uvu"], backend="torch").backend == "torch"
    assert compile_source(CASES["uvu"], backend="triton").backend == "triton"


def test_backend_triton_without_triton(monkeypatch):
    import fusionlang.triton_backend as backend
    monkeypatch.setattr(backend, "triton_available", lambda: False)
    with pytest.raises(ValueError, match="needs the triton package"):
        compile_source(CASES["uvu"], backend="triton")
    assert backend.select_backend("auto") == "torch"


GRAPH = """group O3
diagram T {
    in  h : 2x(0e + 1o) per node
    in  y : sh(2) per edge
    out a : 2x(0e + 1o + 2e) per node
    wire hs : 2x(0e + 1o) = gather(h, sender)
    wire m  : 2x(0e + 1o + 2e) = fuse(hs, y) [weights=uvu, external]
    a = scatter(m, receiver)
}
"""


@pytest.mark.parametrize("edges", [[[0, 1, 1, 3, 3], [1, 0, 2, 2, 2]], [[], []]], ids=["repeated", "no-edges"])
def test_graph_diagram_gather_fuse_scatter(edges):
    """The gather -> fuse -> scatter chain of a graph diagram runs as one kernel (edges into one
    node repeated, and E = 0); tests/test_triton_graph.py covers chains in depth."""
    reference = compile_source(GRAPH, backend="torch").modules["T"]().double()
    program = compile_source(GRAPH, backend="triton")
    module = program.modules["T"]().double()
    assert "one Triton kernel with its gather and scatter (_fuse0)" in program.python
    edge_index = torch.tensor(edges, dtype=torch.long).reshape(2, -1)
    numel = program.plans["T"].vertices[1].weight_numel
    gen = torch.Generator().manual_seed(4)
    h = torch.randn(4, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(edge_index.shape[1], 9, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(edge_index.shape[1], numel, generator=gen, dtype=torch.float64, requires_grad=True)
    expected, got = reference(h, y, w, edge_index), module(h, y, w, edge_index)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    for e, g in zip(torch.autograd.grad(expected, (h, y, w), grad, allow_unused=True),
                    torch.autograd.grad(got, (h, y, w), grad, allow_unused=True)):
        if e is None or g is None:
            assert (e is None or not e.any()) and (g is None or not g.any())
        else:
            torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_cli_compile_backend_triton_writes_a_standalone_file(tmp_path):
    import importlib.util
    import subprocess
    source = tmp_path / "edge.fus"
    source.write_text(CASES["uvu-external"])
    out = tmp_path / "edge_triton.py"
    res = subprocess.run([sys.executable, "-m", "fusionlang", "compile", str(source), "--backend", "triton",
                          "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "with Triton kernels" in res.stderr
    spec = importlib.util.spec_from_file_location("edge_triton", out)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    reference, _, _, args = build(CASES["uvu-external"], torch.float64)
    module = generated.T().double()
    torch.testing.assert_close(module(*args), reference(*args), rtol=1e-12, atol=1e-12)
    bad = subprocess.run([sys.executable, "-m", "fusionlang", "compile", str(source), "--backend", "cuda"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_torch_compile_traces_the_torch_form():
    torch._dynamo.reset()
    reference, module, _, args = build(CASES["uvu-external"], torch.float64)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), reference(*args), rtol=1e-12, atol=1e-12)


def test_kernels_compile_for_a_gpu_target():
    """The interpreter runs kernels as Python and checks little of what compiled Triton requires (types
    of values carried through loops, layouts); compile every mode's kernels for sm_90 ahead of time,
    which needs no GPU (benchmarks/gpu/compile_check.py), in a process without TRITON_INTERPRET."""
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    sources = [CASES[k] for k in ("uvu-mul2", "uvw-external", "uuu", "none", "three-body", "product-basis",
                                  "symmetric-3", "uvw-3")]
    code = ("import json, sys; from benchmarks.gpu.compile_check import check; "
            "rows = [r for s in json.load(sys.stdin) for r in check(s, 90)]; print(json.dumps(rows))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    import json
    res = subprocess.run([sys.executable, "-c", code], input=json.dumps(sources), capture_output=True, text=True,
                         cwd=root, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(rows) == 19      # forward and backward each; uvw: one backward per input
    assert all(r["registers"] > 0 and r["stack"] == 0 for r in rows), rows


def test_symmetric_fuse_unrolls_monomials():
    """A symmetric fuse's kernels read its basis blocks (no tree), one term per monomial: entries
    that differ only by the order of positions reading one term are summed into one."""
    from fusionlang.triton_backend.spec import fuse_spec, path_tensors
    import numpy as np
    program = compile_source(CASES["symmetric-3"], backend="triton")
    plan = program.plans["T"]
    (vertex,) = plan.vertices
    spec = fuse_spec(plan.emitted, vertex, "_f")
    dense = sum(int(np.count_nonzero(np.abs(t) > 1e-13)) for t in path_tensors(plan.emitted, vertex))
    assert all(not p.stages for p in spec.paths)
    assert sum(len(p.entries) for p in spec.paths) < dense
    for p in spec.paths:     # one entry per monomial: component tuples sorted within each term's run
        keys = [(tuple(idx), k) for idx, k, _ in p.entries]
        assert len(keys) == len(set(keys))
        for idx, _ in keys:
            for a in range(len(idx) - 1):
                if p.ins[a] == p.ins[a + 1]:
                    assert idx[a] <= idx[a + 1]


@pytest.mark.parametrize("case", ["uvu", "uvw-external", "none", "product-basis", "mixed", "symmetric"])
def test_state_dict_round_trips_across_backends(case, tmp_path):
    """A state_dict saved with backend="torch" loads strictly into backend="triton" and back (the
    Triton module carries the torch module's coupling buffers), and both compute the same numbers."""
    texts = dict(CASES, mixed=MIXED, symmetric=SYMMETRIC)
    torch_module = compile_source(texts[case], backend="torch").modules["T"]().double()
    triton_module = compile_source(texts[case], backend="triton").modules["T"]().double()
    assert sorted(torch_module.state_dict()) == sorted(triton_module.state_dict())
    torch.save(torch_module.state_dict(), tmp_path / "torch.pt")
    triton_module.load_state_dict(torch.load(tmp_path / "torch.pt"))
    for name, value in torch_module.state_dict().items():
        torch.testing.assert_close(triton_module.state_dict()[name], value, rtol=0, atol=0)
    _, _, _, args = build(texts[case], torch.float64)
    torch.testing.assert_close(triton_module(*args), torch_module(*args), rtol=1e-12, atol=1e-12)
    fresh = compile_source(texts[case], backend="torch").modules["T"]().double()
    with torch.no_grad():
        for p in triton_module.parameters():
            p.add_(0.5)
    torch.save(triton_module.state_dict(), tmp_path / "triton.pt")
    fresh.load_state_dict(torch.load(tmp_path / "triton.pt"))
    torch.testing.assert_close(fresh(*args), triton_module(*args), rtol=1e-12, atol=1e-12)


COVERAGE = [
    # (source, what backend="triton" does with its one vertex), the table of docs/gpu.md
    (CASES["uvu"], "kernels"),
    (CASES["uvw"], "kernels"),
    (CASES["uuu"], "kernels"),
    (CASES["none"], "kernels"),
    (CASES["three-body"], "kernels"),
    (CASES["product-basis"], "kernels"),
    (diagram({"A": "2x(0e + 1o)"}, "2x0e", "fuse(A, A, A, A) [weights=uuu]"), "kernels"),
    (CASES["symmetric-2"], "kernels"),
    (CASES["symmetric-3"], "kernels"),
    (CASES["symmetric-4"], "kernels"),
    (GRAPH, "kernels with its gather and scatter"),
    (CASES["uvw-3"], "kernels"),
    (diagram({"h": "0e", "y1": "0e", "y2": "0e"}, "0e", "fuse(h, y1, y2) [weights=none]"),
     "torch code: n-ary fuse with weights=none has no Triton kernel (uvu, uvw and uuu do)"),
    ("group SU2\ndiagram T {\n    in a : 1/2\n    in b : 1/2\n    out m : 0 + 1\n    m = fuse(a, b)\n}\n",
     "torch code: SU2 tensors are complex; Triton kernels are generated for real (O3, SO3) tensors"),
    (diagram({"x": "2x0e"}, "3x0e", "linear(x)"), "torch code: linear vertices have no Triton kernel"),
]


@pytest.mark.parametrize("source, expected", COVERAGE, ids=[str(k) for k in range(len(COVERAGE))])
def test_coverage_reports_kernels_and_fallbacks(source, expected):
    from fusionlang.triton_backend.emit import coverage
    program = compile_source(source, backend="triton")
    plan = next(iter(program.plans.values()))
    (row,) = [what for v, what in coverage(plan) if v.kind != "gather"]
    assert row == expected
    assert ("@triton.jit" in program.python) == expected.startswith("kernels")
    if not expected.startswith("kernels"):
        assert expected.split(": ", 1)[1] in program.python      # the file says why, in a comment


def test_cli_compile_notes_the_vertices_that_keep_torch_code(tmp_path):
    import subprocess
    source = tmp_path / "mixed.fus"
    source.write_text(MIXED)
    res = subprocess.run([sys.executable, "-m", "fusionlang", "compile", str(source), "--backend", "triton",
                          "-o", str(tmp_path / "mixed.py")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"note: {source}:7: `m = linear(...)` keeps torch code: linear vertices have no Triton kernel" \
        in res.stderr
    assert "wire t" not in res.stderr and ":5:" not in res.stderr      # the fuse runs as kernels
