"""The generated PyTorch modules: agreement with the reference evaluator, autograd,
torch.compile / torch.export, dtype moves, state_dict, and the generated source itself."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys

import pytest
import sympy
import torch

import fusionlang
from fusionlang.api import compile_file, compile_source
from fusionlang.reference import evaluate_closed

from helpers_codegen import (ROOT, TOL, all_sources, as_tuple, example_files, forward_names,
                             language_blocks, make_inputs, module_vs_reference, relative_error)

SOURCES = all_sources()


def _compiled(text, cache={}):
    if text not in cache:
        cache[text] = compile_source(text)
    return cache[text]


def _cases(closed: bool):
    out = []
    for sid, text in SOURCES:
        for d in _compiled(text).diagrams:
            if d.is_closed == closed:
                out.append(pytest.param(text, d.name, id=f"{sid}:{d.name}"))
    return out


OPEN = _cases(False)
CLOSED = _cases(True)

EDGE_MESSAGE = (ROOT / "examples" / "diagrams" / "edge_message.fus").read_text()
THREE_BODY = (ROOT / "examples" / "diagrams" / "three_body.fus").read_text()


def test_corpus_is_not_empty():
    assert len(example_files()) >= 10
    assert len(language_blocks()) >= 2
    assert len(OPEN) >= 15 and len(CLOSED) >= 3


# ----------------------------------------------------------------------------- 1. module == reference


@pytest.mark.parametrize("text,name", OPEN)
def test_module_matches_reference(text, name):
    program = _compiled(text)
    err = module_vs_reference(program, name, batch=3, seed=1)
    assert err <= TOL, f"{name}: relative error {err:.3e} against reference.evaluate"


@pytest.mark.parametrize("text,name", OPEN)
def test_forward_computes_no_expression_twice(text, name):
    """Shared intermediates (e.g. one y1 (x) y2 coupling for every three-body path that needs it)
    are computed once: no two assignments in a forward have the same right-hand side."""
    tree = ast.parse(_compiled(text).python)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    forward = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    rhs = [ast.unparse(n.value) for n in ast.walk(forward) if isinstance(n, ast.Assign)]
    repeated = {r for r in rhs if rhs.count(r) > 1}
    assert not repeated, repeated


def _bound_names(forward: ast.FunctionDef) -> list[str]:
    """Every binding of a local in forward: its parameters, then each assignment target."""
    names = [a.arg for a in forward.args.args + forward.args.kwonlyargs]
    for node in ast.walk(forward):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.NamedExpr, ast.For)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)]
    return names


@pytest.mark.parametrize("text,name", OPEN)
def test_forward_binds_every_name_once(text, name):
    """True single assignment (issue 11, item 5): no local of forward is bound twice, the
    arguments included, so a name is a value and the emitter's reuse of values is sound."""
    tree = ast.parse(_compiled(text).python)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    forward = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    names = _bound_names(forward)
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_equal_values_are_computed_once_across_vertices():
    """Two vertices reading the same input term with the same operator share y @ K, the transposed
    terms and the buffer itself (values, not text: their buffers had different names before)."""
    text = """group O3
diagram Twice {
    in  x : 2x0e + 2x1o
    in  y : 0e + 1o
    out a : 2x0e + 2x1o
    out b : 2x0e + 2x1o
    a = fuse(x, y) [weights=uvu]
    b = fuse(x, y) [weights=uvu, external]
}
"""
    program = compile_source(text)
    source = program.python
    assert source.count("register_buffer(") == 2          # the two operator blocks, once each
    assert source.count(" @ self.") == 2                    # y @ K once per block, not per vertex
    assert source.count(".transpose(1, 2).contiguous()") == 1
    args = make_inputs(program.plans["Twice"].diagram, program.plans["Twice"], 3, seed=0)
    assert module_vs_reference(program, "Twice", batch=3, seed=1) <= TOL
    assert set(args) == {"x", "y", "b_weights"}


@pytest.mark.parametrize("text,name", OPEN)
def test_module_batch_shapes(text, name):
    """Leading batch dimensions: [2, 3, dim] gives the same as the flattened [6, dim]."""
    program = _compiled(text)
    plan = program.plans[name]
    if plan.diagram.is_graph:
        pytest.skip("graph diagrams take [V, dim] / [E, dim] tensors, no further batch dimensions "
                    "(LANGUAGE.md section 9; tests/test_graph_codegen.py)")
    module = program.modules[name]().double()
    names = forward_names(plan.diagram, plan)
    args = make_inputs(plan.diagram, plan, 6, seed=2)
    with torch.no_grad():
        flat = as_tuple(module(*[args[n] for n in names]))
        nested = as_tuple(module(*[args[n].reshape(2, 3, -1) for n in names]))
    for a, b in zip(flat, nested):
        assert b.shape[:2] == (2, 3)
        torch.testing.assert_close(b.reshape(6, -1), a, rtol=0, atol=0)


@pytest.mark.parametrize("text,name", CLOSED)
def test_closed_numeric_equals_exact(text, name):
    d = _compiled(text).analysis.diagram(name)
    numeric = evaluate_closed(d)
    exact = evaluate_closed(d, exact=True)
    assert isinstance(exact, sympy.Expr)
    assert abs(numeric - float(exact)) <= 1e-12 * max(1.0, abs(float(exact)))


def test_theta_is_three():
    theta = next(t for t in language_blocks() if "diagram Theta" in t)
    d = compile_source(theta).analysis.diagram("Theta")
    assert evaluate_closed(d, exact=True) == 3


# ----------------------------------------------------------------------------- 3. double backward


def test_forces_double_backward_reaches_parameters():
    """E = sum of the 0e outputs; forces = dE/dy with create_graph; a loss on forces trains the weights."""
    program = compile_source(EDGE_MESSAGE)
    module = program.modules["EdgeMessage"]().double()
    torch.manual_seed(0)
    h = torch.randn(5, 144, dtype=torch.float64)
    y = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    m = module(h, y)
    energy = m[:, :16].sum()          # 16x0e comes first in 16x(0e + 1o + 2e)
    (forces,) = torch.autograd.grad(energy, y, create_graph=True)
    assert forces.shape == y.shape and forces.requires_grad
    loss = (forces ** 2).sum()
    loss.backward()
    g = module.m_weight.grad
    assert g is not None and torch.isfinite(g).all()
    assert g.abs().max() > 0
    # Only the paths that end in 0e can matter to E: the other weights get exactly zero gradient.
    assert (g != 0).sum() < g.numel()


def test_gradgradcheck_tiny():
    program = compile_source("""group O3
diagram Tiny {
    in  h : 2x(0e + 1o)
    in  y : 0e + 1o
    out m : 2x(0e + 1e)
    m = fuse(h, y) [weights=uvu]
}
""")
    module = program.modules["Tiny"]().double()
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(2, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w = module.m_weight.detach().clone().requires_grad_(True)

    def f(h, y, w):
        return torch.func.functional_call(module, {"m_weight": w}, (h, y))

    assert torch.autograd.gradcheck(f, (h, y, w))
    assert torch.autograd.gradgradcheck(f, (h, y, w))


# ----------------------------------------------------------------------------- 4. torch.compile / export


COMPILE_CASES = [pytest.param(EDGE_MESSAGE, "EdgeMessage", id="EdgeMessage"),
                 pytest.param(THREE_BODY, "ThreeBody", id="ThreeBody")]


def _eager_case(text, name, batch=4):
    program = _compiled(text)
    plan = program.plans[name]
    torch.manual_seed(0)
    module = program.modules[name]().double()
    names = forward_names(plan.diagram, plan)
    args = make_inputs(plan.diagram, plan, batch, seed=5)
    return module, tuple(args[n] for n in names)


@pytest.mark.parametrize("text,name", COMPILE_CASES)
def test_torch_compile_fullgraph(text, name):
    module, args = _eager_case(text, name)
    with torch.no_grad():
        eager = module(*args)
    torch._dynamo.reset()
    # Inductor needs a C++ toolchain and takes ~tens of seconds per graph on a small CPU;
    # aot_eager still traces the whole forward (fullgraph) through dynamo and AOTAutograd.
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        got = compiled(*args)
        again = compiled(*[a.clone() for a in args])
    torch.testing.assert_close(got, eager, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again, eager, rtol=1e-12, atol=1e-12)
    # and gradients through the compiled graph
    x = args[0].clone().requires_grad_(True)
    compiled(x, *args[1:]).sum().backward()
    x_e = args[0].clone().requires_grad_(True)
    module(x_e, *args[1:]).sum().backward()
    torch.testing.assert_close(x.grad, x_e.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text,name", COMPILE_CASES)
def test_torch_export(text, name):
    module, args = _eager_case(text, name)
    with torch.no_grad():
        eager = module(*args)
    exported = torch.export.export(module, args)
    got = exported.module()(*args)
    torch.testing.assert_close(got, eager, rtol=1e-12, atol=1e-12)
    # the exported graph is not specialised to the input values
    other = tuple(a * 2 for a in args)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*other), module(*other), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- 5. module hygiene


def test_dtype_moves_parameters_and_buffers():
    module = _compiled(THREE_BODY).modules["ThreeBody"]()
    tensors = lambda m: list(m.parameters()) + list(m.buffers())
    assert len(list(module.buffers())) > 0
    for t in module.buffers():
        if t.is_floating_point():
            assert t.dtype == torch.float64            # constants are built in float64
    module.float()
    assert all(t.dtype == torch.float32 for t in tensors(module) if t.is_floating_point())
    module.double()
    assert all(t.dtype == torch.float64 for t in tensors(module) if t.is_floating_point())
    module.float()
    module.to(torch.float64)
    assert all(t.dtype == torch.float64 for t in tensors(module) if t.is_floating_point())
    # index buffers stay integer
    assert all(not t.is_floating_point() for t in module.buffers() if t.dtype == torch.long)


def test_float32_module_close_to_float64():
    program = _compiled(EDGE_MESSAGE)
    plan = program.plans["EdgeMessage"]
    torch.manual_seed(0)
    module = program.modules["EdgeMessage"]()
    args = make_inputs(plan.diagram, plan, 4, seed=3)
    with torch.no_grad():
        y32 = module.float()(*[a.float() for a in args.values()])
        y64 = module.double()(*args.values())
    assert y32.dtype == torch.float32 and y64.dtype == torch.float64
    assert relative_error(y32.double().numpy(), y64.numpy()) < 1e-5


def test_state_dict_round_trip():
    program = _compiled(EDGE_MESSAGE)
    plan = program.plans["EdgeMessage"]
    cls = program.modules["EdgeMessage"]
    torch.manual_seed(1)
    a = cls().double()
    torch.manual_seed(2)
    b = cls().double()
    args = make_inputs(plan.diagram, plan, 3, seed=0)
    with torch.no_grad():
        assert not torch.equal(a(*args.values()), b(*args.values()))
    state = a.state_dict()
    assert "m_weight" in state
    b.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(a(*args.values()), b(*args.values()))
    # through torch.save / torch.load too
    import io
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = cls().double()
    c.load_state_dict(torch.load(buf))
    with torch.no_grad():
        assert torch.equal(a(*args.values()), c(*args.values()))


def test_construction_is_deterministic_given_seed():
    cls = _compiled(THREE_BODY).modules["ThreeBody"]
    torch.manual_seed(123)
    a = cls()
    torch.manual_seed(123)
    b = cls()
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _all_example_text():
    return [p for p in example_files()]


def test_source_is_deterministic_in_process():
    for path in example_files():
        assert compile_file(path).python == compile_file(path).python, path.name


_PRINT_SOURCES = """
import hashlib, sys
from fusionlang.api import compile_file
for p in sys.argv[1:]:
    print(p, hashlib.sha256(compile_file(p).python.encode()).hexdigest())
"""


def test_source_is_identical_across_processes():
    files = [str(p) for p in example_files()]
    outputs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", _PRINT_SOURCES, *files], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout)
    assert outputs[0] == outputs[1]
    import hashlib
    here = "".join(f"{p} {hashlib.sha256(compile_file(p).python.encode()).hexdigest()}\n" for p in files)
    assert here == outputs[0]


def _imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0] if node.level == 0 else ".")
    return found


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_generated_source_imports_only_torch_and_has_header(path):
    source = compile_file(path).python
    assert _imports(source) == {"torch"}
    # no dynamic imports either
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    assert not names & {"__import__", "importlib", "exec", "eval", "fusionlang", "numpy", "np"}
    first = source.split("\n", 1)[0]
    assert first == f"# Code generated by fusionlang {fusionlang.__version__} from {path.name}. DO NOT EDIT."


def test_header_for_compile_source():
    first = compile_source(EDGE_MESSAGE).python.split("\n", 1)[0]
    assert first == f"# Code generated by fusionlang {fusionlang.__version__} from <input>. DO NOT EDIT."


def _import_standalone(path, modname):
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_standalone_file_imports_and_matches(tmp_path, path):
    program = compile_file(path)
    out = tmp_path / f"gen_{path.stem}.py"
    out.write_text(program.python)
    before = set(sys.modules)
    mod = _import_standalone(out, f"gen_{path.stem}")
    assert not any(m.startswith("fusionlang") for m in set(sys.modules) - before)
    assert sorted(mod.__all__) == sorted(program.modules)
    for name, cls in program.modules.items():
        plan = program.plans[name]
        torch.manual_seed(7)
        standalone = getattr(mod, name)().double()
        torch.manual_seed(7)
        in_process = cls().double()
        args = make_inputs(plan.diagram, plan, 2, seed=4)
        names = forward_names(plan.diagram, plan)
        with torch.no_grad():
            for a, b in zip(as_tuple(standalone(*[args[n] for n in names])),
                            as_tuple(in_process(*[args[n] for n in names]))):
                assert torch.equal(a, b)


def test_standalone_file_imports_in_fresh_process_without_fusionlang(tmp_path):
    """A fresh interpreter that cannot import fusionlang at all still loads the generated file."""
    program = compile_file(ROOT / "examples" / "diagrams" / "three_body.fus")
    (tmp_path / "gen_three_body.py").write_text(program.python)
    (tmp_path / "fusionlang.py").write_text("raise ImportError('fusionlang must not be imported')\n")
    code = ("import sys; sys.path.insert(0, '.'); import torch, gen_three_body as g; m = g.ThreeBody(); "
            "print(tuple(m(torch.randn(2, 32), torch.randn(2, 9), torch.randn(2, 9)).shape))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=""))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(2, 32)"


# ----------------------------------------------------------------------------- Python names


def test_python_keywords_and_generator_names_as_wires():
    program = compile_source("""group O3
diagram class {
    in  lambda : 2x0e + 1o
    in  self   : 1o
    in  torch  : 0e
    out batch  : 2x0e + 2x1e
    wire dtype : 2x1e + 2x0e
    dtype = fuse(lambda, self) [weights=uvw]
    batch = fuse(dtype, torch) [weights=uvw]
}
""")
    assert list(program.modules) == ["class"]
    assert module_vs_reference(program, "class", batch=2, seed=0) <= TOL


NAME_COLLISIONS = {
    # `self` is renamed `self_` in Python, which is also the name of the second input.
    "renamed_reserved": """group O3
diagram D {
    in  self  : 0e
    in  self_ : 0e
    out y : 0e
    y = fuse(self, self_)
}
""",
    # the external weights argument `m_weights` collides with an input wire of that name.
    "weights_argument": """group O3
diagram D {
    in  m_weights : 2x0e
    in  b : 0e
    out m : 2x0e
    m = fuse(m_weights, b) [weights=uvu, external]
}
""",
}


@pytest.mark.parametrize("case", sorted(NAME_COLLISIONS))
def test_wire_names_that_collide_after_renaming(case):
    program = compile_source(NAME_COLLISIONS[case])
    assert module_vs_reference(program, "D", batch=2, seed=0) <= TOL
