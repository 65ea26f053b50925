"""Per-path output, `fuse(...) [paths=separate]` (docs/language.md, "Per-path output"; issue 13).

Every coupling path gets its own output block without weights, in e3nn's FullTensorProduct order;
the declared output's irreps pick the paths kept (filter_ir_out) and must have the blocks' layout.
"""
from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3

import fusionlang.nn as fnn
from fusionlang.api import compile_file, compile_source
from fusionlang.frontend.fmt import format_source
from fusionlang.frontend import analyze
from fusionlang.backend.plan import plan_diagram
from fusionlang.reference import evaluate
from fusionlang.verify import equivariance_error
from helpers_codegen import float64_default  # noqa: F401  (autouse: e3nn's constants in float64)

ROOT = Path(__file__).resolve().parents[1]


def _module(source: str, name: str):
    program = compile_source(source, backend="torch")
    return program, program.modules[name]().double()


def _binary(group: str, a: str, b: str, out: str) -> str:
    return (f"group {group}\ndiagram P {{\n    in a : {a}\n    in b : {b}\n    out c : {out}\n"
            f"    c = fuse(a, b) [paths=separate]\n}}\n")


# ----------------------------------------------------------------------------- e3nn agreement

E3NN_CASES = [   # (a, b, filter_ir_out or None, the declared output = e3nn's irreps_out simplified)
    ("2x0e + 3x1o + 1x2e", "1x0e + 2x1o + 1x2o", None),
    ("2x1o + 1x1e", "3x1o", ["0e", "1e", "2o"]),
    ("1x0e + 2x1o + 1x2e", "1x0e + 1x1o + 1x2e", ["1o", "2e"]),
    ("3x2e", "2x3o", None),
]


@pytest.mark.parametrize("a, b, filter_ir_out", E3NN_CASES)
def test_fuse_paths_separate_equals_e3nn_full_tensor_product(a, b, filter_ir_out):
    theirs = o3.FullTensorProduct(o3.Irreps(a), o3.Irreps(b), filter_ir_out)
    declared = " + ".join(f"{mul}x{ir}" for mul, ir in theirs.irreps_out.simplify())
    _, module = _module(_binary("O3", a, b, declared), "P")
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(7, theirs.irreps_in1.dim, generator=gen, dtype=torch.float64)
    x2 = torch.randn(7, theirs.irreps_in2.dim, generator=gen, dtype=torch.float64)
    expected = theirs.to(torch.float64)(x1, x2)
    assert expected.abs().max() > 0.1
    assert (module(x1, x2) - expected).abs().max() < 1e-12
    ours = fnn.FullTensorProduct(a, b, filter_ir_out)
    assert ours.irreps_out == fnn.Irreps(str(theirs.irreps_out))
    assert (ours(x1, x2) - expected).abs().max() < 1e-12


def test_nn_full_tensor_product_is_the_compiled_per_path_diagram():
    tp = fnn.FullTensorProduct("2x0e + 1x1o", "1x1o + 1x2e", ["1o", "2e", "3o"])
    assert type(tp.product).__module__.startswith("fusionlang.generated")     # a compiled diagram
    assert "paths: 5, internal weights: 0" in type(tp.product).__doc__
    assert tp.irreps_out == fnn.Irreps("2x1o + 1x1o + 2x2e + 1x2e + 1x3o")
    assert not tp.state_dict()     # constants only, as e3nn's FullTensorProduct has no parameters
    x1, x2 = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    theirs = o3.FullTensorProduct("2x0e + 1x1o", "1x1o + 1x2e", ["1o", "2e", "3o"]).to(torch.float64)
    tp.float().double()            # the coupling constants keep float64 through a float32 round trip
    assert (tp(x1, x2) - theirs(x1, x2)).abs().max() < 1e-12


# ----------------------------------------------------------------------------- the total-spin basis

def _spin_basis_matrix() -> np.ndarray:
    """The 16 x 16 map of examples/diagrams/spin_chain_states.fus, column k = product state k."""
    program = compile_file(ROOT / "examples" / "diagrams" / "spin_chain_states.fus", backend="torch")
    module = program.modules["SpinChainStates"]()
    e = torch.eye(2, dtype=torch.complex128)
    columns = [module(e[a], e[b], e[c], e[d]) for a, b, c, d in itertools.product(range(2), repeat=4)]
    return torch.stack(columns, dim=1).numpy()


def test_spin_chain_states_is_unitary_16_to_16():
    U = _spin_basis_matrix()
    assert U.shape == (16, 16)
    assert np.abs(U.conj().T @ U - np.eye(16)).max() < 1e-12
    assert np.abs(U @ U.conj().T - np.eye(16)).max() < 1e-12


def test_spin_chain_states_diagonalises_total_spin():
    """U S^2 U^dagger = diag(S(S+1)) block by block: 2 singlets, 3 triplets, 1 quintet."""
    sz = np.diag([-0.5, 0.5])                      # index j + m
    sp = np.array([[0.0, 0.0], [1.0, 0.0]])        # S+ |-1/2> = |+1/2>
    one = [(sp + sp.T) / 2, (sp - sp.T) / 2j, sz]

    def site(op, k):
        mats = [np.eye(2)] * 4
        mats[k] = op
        out = mats[0]
        for m in mats[1:]:
            out = np.kron(out, m)
        return out
    total = [sum(site(op, k) for k in range(4)) for op in one]
    s2 = sum(t @ t for t in total)
    U = _spin_basis_matrix()
    expected = np.diag([0.0, 0.0] + [2.0] * 9 + [6.0] * 5)
    assert np.abs(U @ s2 @ U.conj().T - expected).max() < 1e-12


# ----------------------------------------------------------------------------- equivariance, gradients

NARY = """group O3
diagram N {
    in a : 2x0e + 1x1o
    in b : 1o + 2e
    in c : 0e + 1o
    out d : OUT
    d = fuse(a, b, c) [paths=separate]
}
"""


def _nary_source() -> str:
    """The n-ary example with the output the F085 help line prints (so the test does not hard-code it)."""
    analysis = analyze(NARY.replace("OUT", "0e"))
    (diag,) = [d for d in analysis.diagnostics if d.code == "F085"]
    return NARY.replace("OUT", diag.help.split(" : ", 1)[1].split("`")[0])


def test_equivariance_binary_nary_and_su2():
    cases = [(_nary_source(), "N")]
    cases.append((_binary("SU2", "2x1/2 + 1", "1/2 + 3/2", "OUT"), "P"))
    cases.append(((ROOT / "examples" / "diagrams" / "cormorant_cg_product.fus").read_text(), "CGProduct"))
    for source, name in cases:
        if "OUT" in source:
            (diag,) = [d for d in analyze(source.replace("OUT", "0")).diagnostics if d.code == "F085"]
            source = source.replace("OUT", diag.help.split(" : ", 1)[1].split("`")[0])
        program = compile_source(source, backend="torch")
        diagram = program.analysis.diagram(name)
        error = equivariance_error(program.modules[name](), diagram, program.plans[name])
        assert error < 1e-10, (name, error)


def test_gradcheck_and_gradgradcheck():
    _, module = _module(_nary_source(), "N")
    gen = torch.Generator().manual_seed(3)
    xs = tuple(torch.randn(2, d, generator=gen, dtype=torch.float64, requires_grad=True) for d in (5, 8, 4))
    assert torch.autograd.gradcheck(module, xs)
    assert torch.autograd.gradgradcheck(module, xs)


# ----------------------------------------------------------------------------- reference vs torch

CHAIN = """group O3
diagram Chain {
    in x : 2x0e + 2x1o
    in y : 0e + 1o
    out z : 3x0e + 2x1o
    wire t : 4x0e + 4x1o + 2x1e + 2x2e = fuse(x, y) [paths=separate]
    z = fuse(t, y) [weights=uvw]
}
"""


@pytest.mark.parametrize("source, name", [(CHAIN, "Chain"), (None, "N"), (None, "SpinChainStates")])
def test_reference_evaluator_agrees_with_torch(source, name):
    if name == "N":
        source = _nary_source()
    elif source is None:
        source = (ROOT / "examples" / "diagrams" / "spin_chain_states.fus").read_text()
    program = compile_source(source, backend="torch")
    diagram = program.analysis.diagram(name)
    module = program.modules[name]().double()       # SU2's coefficients are real; inputs complex
    gen = torch.Generator().manual_seed(5)
    dtype = torch.complex128 if diagram.group.is_complex else torch.float64
    xs = [torch.randn(4, diagram.irreps(w).dim, generator=gen, dtype=dtype) for w in diagram.inputs]
    weights = {}
    for p in module.parameters():
        weights = {"z": p.detach().numpy()}
    expected = evaluate(diagram, {w: x.numpy() for w, x in zip(diagram.inputs, xs)}, weights)
    got = module(*xs)
    assert np.abs(got.detach().numpy() - expected[diagram.outputs[0]]).max() < 1e-12


def test_separate_differs_from_merged_and_merged_is_the_default():
    """paths=merged (written) is the default's code; paths=separate keeps what merged sums."""
    merged = compile_source(_binary("O3", "1o", "1o", "0e + 1e + 2e").replace("paths=separate", "paths=merged"),
                            backend="torch").python
    default = compile_source(_binary("O3", "1o", "1o", "0e + 1e + 2e").replace(" [paths=separate]", ""),
                             backend="torch").python
    assert merged == default
    spelled = _binary("O3", "1o", "2x1o", "2x0e + 2x1e + 2x2e").replace("[paths", "[weights=none, paths")
    assert compile_source(spelled, backend="torch").plans["P"].vertices[0].per_path    # the same as alone
    _, separate = _module(_binary("SU2", "1/2", "1/2 + 1/2", "0 + 0 + 1 + 1"), "P")
    _, summed = _module(_binary("SU2", "1/2", "1/2 + 1/2", "0 + 1").replace("paths=separate", "weights=none"), "P")
    x, y = torch.randn(3, 2, dtype=torch.complex128), torch.randn(3, 4, dtype=torch.complex128)
    whole, part = separate(x, y), summed(x, y)
    # merged = the separate blocks of each irrep summed, times 1/sqrt(2): element normalisation over 2 paths
    assert torch.allclose(part[:, :1], (whole[:, 0:1] + whole[:, 1:2]) / 2 ** 0.5, atol=1e-12)
    assert torch.allclose(part[:, 1:], (whole[:, 2:5] + whole[:, 5:8]) / 2 ** 0.5, atol=1e-12)


# ----------------------------------------------------------------------------- diagnostics

SPIN = (ROOT / "examples" / "diagrams" / "spin_chain_states.fus").read_text()
SPIN_LINE = next(i for i, line in enumerate(SPIN.splitlines(), 1) if "= fuse(" in line)
SPIN_OPTION_COLUMN = SPIN.splitlines()[SPIN_LINE - 1].index("paths=separate") + 1


def _only(source: str):
    analysis = analyze(source, "x.fus")
    errors = [d for d in analysis.diagnostics if d.is_error]
    assert len(errors) == 1, [d.render(source) for d in analysis.diagnostics]
    return errors[0]


@pytest.mark.parametrize("options, clash", [("[paths=separate, weights=uvw]", "`weights=uvw`"),
                                            ("[weights=uuu, paths=separate]", "`weights=uuu`"),
                                            ("[paths=separate, external]", "`external`"),
                                            ("[paths=separate, symmetric]", "`symmetric`")])
def test_f083_weights_with_separate_paths(options, clash):
    source = SPIN.replace("[paths=separate]", options)
    d = _only(source)
    assert d.code == "F083" and clash in d.message and "weights=none" in d.help
    line = source.splitlines()[d.span.line - 1]
    assert d.span.line == SPIN_LINE and line[d.span.column - 1:].startswith("paths=separate")


@pytest.mark.parametrize("statement", ["b = linear(a) [paths=separate]", "(b, c) = split(a) [paths=separate]"])
def test_f084_separate_paths_on_a_vertex_that_is_not_a_fuse(statement):
    source = f"group O3\ndiagram A {{\n    in a : 2x0e\n    out b : 2x0e\n    wire c : 0e\n    {statement}\n}}\n"
    d = _only(source)
    assert d.code == "F084" and (d.span.line, d.span.column) == (6, statement.index("paths") + 5)
    assert "remove the option" in d.help


def test_f085_declared_output_does_not_match_and_help_gives_the_irreps():
    source = SPIN.replace("out S : 2x0 + 3x1 + 2", "out S : 0 + 1 + 2")
    d = _only(source)
    assert d.code == "F085" and d.span.line == SPIN_LINE and "(dim 9)" in d.message and "(dim 16)" in d.message
    assert d.help == "declare `out S : 2x0 + 3x1 + 2`"
    fixed = source.replace("out S : 0 + 1 + 2", d.help.split(" : ", 1)[1].rstrip("`").join(["out S : ", ""]))
    assert analyze(fixed).ok
    # A subset of the irreps keeps those paths (filter_ir_out); the help names that subset and the full set.
    d = _only(SPIN.replace("out S : 2x0 + 3x1 + 2", "out S : 2x0 + 2x1"))
    assert d.help == "declare `out S : 2x0 + 3x1` (every path kept: `2x0 + 3x1 + 2`)"
    d = _only(SPIN.replace("out S : 2x0 + 3x1 + 2", "out S : 3"))
    assert d.code == "F085" and "no path" in d.message


def test_bad_path_mode_and_no_traceback_from_the_cli(tmp_path):
    d = _only(SPIN.replace("paths=separate", "paths=each"))
    assert d.code == "F042" and d.span.line == SPIN_LINE and d.span.column == SPIN_OPTION_COLUMN
    bad = tmp_path / "bad.fus"
    bad.write_text(SPIN.replace("[paths=separate]", "[paths=separate, weights=uvw]"))
    r = subprocess.run([sys.executable, "-m", "fusionlang", "check", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "error[F083]" in r.stderr and "Traceback" not in r.stderr
    closed = tmp_path / "closed.fus"
    closed.write_text("group SU2\ndiagram T {\n    wire a : 1/2\n    wire b : 1/2\n    wire c : 0 + 1\n"
                      "    c = fuse(a, b) [paths=separate]\n    (a, b) = split(c)\n}\n")
    r = subprocess.run([sys.executable, "-m", "fusionlang", "eval", str(closed)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "paths=separate" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- fmt, plan, render

def test_fmt_round_trip_keeps_the_option():
    messy = SPIN.replace("[paths=separate]", "[ paths = separate ]")
    formatted = format_source(messy)
    assert "[paths=separate]" in formatted and format_source(formatted) == formatted
    assert formatted == SPIN


def test_plan_and_render_show_separate_paths():
    program = compile_source(SPIN, backend="torch")
    plan = program.plans["SpinChainStates"]
    (v,) = plan.vertices
    assert v.per_path and len(v.paths) == 6 and plan.weight_numel == 0
    assert [str(t) for t in v.out_irreps] == ["1x0", "1x0", "1x1", "1x1", "1x1", "1x2"]
    assert "[paths=separate]" in program.python
    from fusionlang.render import to_dot
    assert "paths separate</i><br/>6 blocks" in to_dot(program.analysis.diagram("SpinChainStates"))
    assert plan_diagram(program.analysis.diagram("SpinChainStates"), 8).n_paths == 6


def test_language_section_examples_compile():
    """The section of docs/language.md (and of LANGUAGE.md, once merged there) behaves as written."""
    text = (ROOT / "docs" / "language.md").read_text()
    section = text[text.index("## 11. Per-path output"):]
    blocks = [b for b in re.findall(r"```\n(.*?)```", section, re.S)
              if b.lstrip().startswith("group")]
    assert len(blocks) == 3
    for block in blocks:
        analysis = analyze(block)
        if "# error here" in block:
            (error,) = [d for d in analysis.diagnostics if d.is_error]
            marked = next(i for i, line in enumerate(block.split("\n"), 1) if "# error here" in line)
            assert error.code == "F083" and error.span.line == marked
            continue
        assert analysis.ok and not analysis.diagnostics
        program = compile_source(block, backend="torch")
        (name,) = program.modules
        assert program.plans[name].vertices[0].per_path
