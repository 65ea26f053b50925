"""Property tests: random .fus programs (text) -> compile_source -> generated module.

Properties, in float64 (complex128 inputs for SU2):
  * the module agrees with reference.evaluate to 1e-10 relative to the output scale,
  * verify.equivariance_error <= 1e-10,
  * torch.autograd.gradcheck passes for inputs, internal and external weights.

Programs are generated so that the checker accepts them (the uvu/uuu/none multiplicity
rules are satisfied by construction); a test asserts that this stays true.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusionlang.api import compile_source
from fusionlang.diagnostics import FusionError
from fusionlang.verify import equivariance_error

from helpers_codegen import TOL, as_tuple, forward_names, internal_weight_name, make_inputs, module_vs_reference

SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ----------------------------------------------------------------------------- labels and selection rules
# A label is (two_j, parity): parity +1/-1 for O3, 0 otherwise.  Written independently of fusionlang.

LABELS = {
    "O3": [(2 * l, p) for l in range(3) for p in (1, -1)],
    "SO3": [(2 * l, 0) for l in range(3)],
    "SU2": [(k, 0) for k in range(4)],          # 0, 1/2, 1, 3/2
}


def label_text(group: str, lab) -> str:
    two_j, p = lab
    if group == "O3":
        return f"{two_j // 2}{'e' if p > 0 else 'o'}"
    return str(two_j // 2) if two_j % 2 == 0 else f"{two_j}/2"


def product(a, b) -> list:
    (ja, pa), (jb, pb) = a, b
    return [(j, pa * pb) for j in range(abs(ja - jb), ja + jb + 1, 2)]


def reachable(inputs: list[list]) -> set:
    """Final irreps of the left-deep tree over every choice of one term per input."""
    acc = set(inputs[0])
    for labels in inputs[1:]:
        acc = {c for a in acc for b in labels for c in product(a, b)}
    return acc


def irreps_text(group: str, terms) -> str:
    return " + ".join(f"{m}x{label_text(group, lab)}" for m, lab in terms)


# ----------------------------------------------------------------------------- random programs


@dataclass
class Program:
    group: str
    inputs: list = field(default_factory=list)       # wire names in declaration order
    wires: dict = field(default_factory=dict)        # name -> [(mul, label)]
    internal: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    statements: list = field(default_factory=list)
    modes: list = field(default_factory=list)        # (mode or None, external)

    def text(self, order) -> str:
        lines = [f"group {self.group}", "", "diagram D {"]
        for w in self.inputs:
            lines.append(f"    in {w} : {irreps_text(self.group, self.wires[w])}")
        for w in self.outputs:
            lines.append(f"    out {w} : {irreps_text(self.group, self.wires[w])}")
        for w in self.internal:
            if w not in self.outputs:
                lines.append(f"    wire {w} : {irreps_text(self.group, self.wires[w])}")
        lines += ["    " + self.statements[k] for k in order]
        lines.append("}")
        return "\n".join(lines) + "\n"


# Leaf names include Python keywords and names the generator itself uses for temporaries.
NAMES = ["x", "h", "y1", "batch", "dtype", "torch", "self", "w", "w_0", "t_0", "lambda", "super", "_constant",
         "out_part_0", "x_seg_0", "class", "forward", "None_"]
MULS = st.integers(1, 3)


@st.composite
def leaf_terms(draw, group, n_max=2):
    labels = draw(st.lists(st.sampled_from(LABELS[group]), min_size=1, max_size=n_max))
    return labels


def _uniform(terms):
    muls = {m for m, _ in terms}
    return muls.pop() if len(muls) == 1 else None


def _valid(mode, muls_per_input) -> bool:
    """muls_per_input: one uniform mul (or None when mixed) per input."""
    if mode == "uuu":
        return None not in muls_per_input and len(set(muls_per_input)) == 1
    if mode == "uvu":
        ok = muls_per_input[0] is not None
        if len(muls_per_input) > 2:
            ok &= all(m == 1 for m in muls_per_input[1:])
        return ok
    if mode == "none":
        if None in muls_per_input:
            return False
        prod = 1
        for m in muls_per_input:
            prod *= m
        return prod <= 8
    return True


def fuse_vertex(draw, prog: Program, ins: list[str], out: str, max_out_j: int = 4):
    group = prog.group
    mode = draw(st.sampled_from(["uvu", "uuu", "none", None, "uvw"]))
    n = len(ins)
    u = draw(MULS)
    # New leaves get multiplicities that suit the mode.
    for r, w in enumerate(ins):
        if w in prog.wires:
            continue
        labels = draw(leaf_terms(group, 2 if n <= 2 else 1 + (r == 0)))
        if mode == "uuu":
            existing = [_uniform(prog.wires[v]) for v in ins if v in prog.wires]
            m = next((e for e in existing if e is not None), u)
            muls = [m] * len(labels)
        elif mode == "uvu":
            m = u if r == 0 else (draw(MULS) if n == 2 else 1)
            muls = [m] * len(labels)
        elif mode == "none":
            muls = [draw(st.integers(1, 2))] * len(labels)
        else:
            muls = [draw(MULS) for _ in labels]
        prog.wires[w] = list(zip(muls, labels))
        prog.inputs.append(w)
    uniform = [_uniform(prog.wires[w]) for w in ins]
    if mode is not None and not _valid(mode, uniform):
        mode = "uvw"
    reach = sorted(reachable([[lab for _, lab in prog.wires[w]] for w in ins]))
    small = [lab for lab in reach if lab[0] <= max_out_j] or reach[:1]
    labels = draw(st.lists(st.sampled_from(small), min_size=1, max_size=min(3, len(small)), unique=True))
    if mode == "uvu":
        muls = [uniform[0]] * len(labels)
    elif mode == "uuu":
        muls = [uniform[0]] * len(labels)
    elif mode == "none":
        prod = 1
        for m in uniform:
            prod *= m
        muls = [prod] * len(labels)
    elif draw(st.booleans()):                    # uniform, so that a consumer may use uvu/uuu/none
        muls = [draw(MULS)] * len(labels)
    else:
        muls = [draw(MULS) for _ in labels]
    prog.wires[out] = list(zip(muls, labels))
    external = mode in ("uvw", "uvu", "uuu") and draw(st.booleans())
    opts = ""
    if mode is not None:
        opts = f" [weights={mode}{', external' if external else ''}]"
    prog.statements.append(f"{out} = fuse({', '.join(ins)}){opts}")
    prog.modes.append((mode, external))


def linear_vertex(draw, prog: Program, src: str, out: str):
    distinct = list(dict.fromkeys(lab for _, lab in prog.wires[src]))
    labels = draw(st.lists(st.sampled_from(distinct), min_size=1, max_size=len(distinct), unique=True))
    prog.wires[out] = [(draw(MULS), lab) for lab in labels]
    external = draw(st.booleans())
    prog.statements.append(f"{out} = linear({src}){' [external]' if external else ''}")
    prog.modes.append(("linear", external))


SHAPES = ["binary", "square", "square3", "nary", "chain", "nary_chain", "linear_after", "diamond"]


@st.composite
def programs(draw, groups=("O3", "SO3", "SU2"), shapes=tuple(SHAPES)):
    group = draw(st.sampled_from(groups))
    shape = draw(st.sampled_from(shapes))
    prog = Program(group)
    pool = draw(st.permutations(NAMES))
    leaf = iter(pool).__next__
    if shape == "binary":
        fuse_vertex(draw, prog, [leaf(), leaf()], "res")
    elif shape == "square":                      # a wire read twice by one vertex
        fuse_vertex(draw, prog, [leaf()] * 2, "res")
    elif shape == "square3":
        a = leaf()
        fuse_vertex(draw, prog, [a, a, leaf()] if draw(st.booleans()) else [a, a, a], "res")
    elif shape == "nary":
        fuse_vertex(draw, prog, [leaf() for _ in range(draw(st.integers(3, 4)))], "res")
    elif shape == "chain":
        fuse_vertex(draw, prog, [leaf(), leaf()], "mid")
        c = leaf()
        fuse_vertex(draw, prog, ["mid", c] if draw(st.booleans()) else [c, "mid"], "res")
    elif shape == "nary_chain":                  # an n-ary fuse feeding another fuse
        fuse_vertex(draw, prog, [leaf(), leaf(), leaf()], "mid", max_out_j=2)
        fuse_vertex(draw, prog, ["mid", leaf()], "res")
    elif shape == "linear_after":
        fuse_vertex(draw, prog, [leaf(), leaf()], "mid")
        linear_vertex(draw, prog, "mid", "res")
    elif shape == "diamond":                     # one leaf read by two vertices, then joined
        a = leaf()
        fuse_vertex(draw, prog, [a, leaf()], "left", max_out_j=2)
        fuse_vertex(draw, prog, [a, leaf()], "right", max_out_j=2)
        fuse_vertex(draw, prog, ["left", "right"], "res")
    prog.internal = [w for w in ("mid", "left", "right") if w in prog.wires]
    prog.outputs = ["res"]
    if prog.internal and draw(st.booleans()):
        prog.outputs = [prog.internal[0], "res"]    # an internal result that is also an output
    order = draw(st.permutations(range(len(prog.statements))))
    return prog, prog.text(order)


def _compile(text):
    try:
        return compile_source(text)
    except FusionError as exc:
        raise AssertionError(f"generator produced a program the checker rejects:\n{text}\n{exc}") from None


# ----------------------------------------------------------------------------- properties


@settings(max_examples=50, **SETTINGS)
@given(programs())
def test_random_module_matches_reference_and_is_equivariant(case):
    prog, text = case
    program = _compile(text)
    assert list(program.modules) == ["D"]
    plan = program.plans["D"]
    err = module_vs_reference(program, "D", batch=3, seed=0)
    assert err <= TOL, f"reference mismatch {err:.3e}\n{text}"
    torch.manual_seed(0)
    eq = equivariance_error(program.modules["D"](), plan.diagram, plan, trials=2, batch=2)
    assert eq <= TOL, f"equivariance error {eq:.3e}\n{text}"


@settings(max_examples=25, **SETTINGS)
@given(programs())
def test_random_module_gradcheck(case):
    prog, text = case
    program = _compile(text)
    plan = program.plans["D"]
    torch.manual_seed(0)
    module = program.modules["D"]().double()
    names = forward_names(plan.diagram, plan)
    args = make_inputs(plan.diagram, plan, 2, seed=1)
    params = {internal_weight_name(v, plan): getattr(module, internal_weight_name(v, plan)).detach().clone()
              for v in plan.vertices if v.weight_numel and not v.external}
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in module.parameters())
    pnames = list(params)
    leaves = [args[n].clone().requires_grad_(True) for n in names] + \
             [params[n].requires_grad_(True) for n in pnames]

    def f(*tensors):
        xs, ws = tensors[:len(names)], tensors[len(names):]
        return as_tuple(torch.func.functional_call(module, dict(zip(pnames, ws)), xs))

    assert torch.autograd.gradcheck(f, tuple(leaves), atol=1e-8, rtol=1e-6, fast_mode=True), text


def test_generator_is_mostly_valid_and_covers_shapes():
    """The generator must feed the checker valid programs and reach every shape, group and mode."""
    seen_groups, seen_modes = set(), set()
    texts = []

    @settings(max_examples=60, **SETTINGS)
    @given(programs())
    def collect(case):
        prog, text = case
        texts.append(text)
        seen_groups.add(prog.group)
        seen_modes.update(prog.modes)

    collect()
    rejected = []
    for text in texts:
        try:
            compile_source(text)
        except FusionError:
            rejected.append(text)
    assert not rejected, rejected[0]
    assert seen_groups == {"O3", "SO3", "SU2"}
    modes = {m for m, _ in seen_modes}
    assert {"uvw", "uvu", "uuu", "none", None, "linear"} <= modes
    assert {True, False} <= {e for _, e in seen_modes}
    assert any("fuse(" in t and t.count("fuse(") >= 2 for t in texts)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_compiles_and_matches(shape):
    """One derandomized program per shape, so a failure names the shape."""
    @settings(max_examples=3, **SETTINGS)
    @given(programs(shapes=(shape,)))
    def check(case):
        prog, text = case
        program = _compile(text)
        assert module_vs_reference(program, "D", batch=2, seed=3) <= TOL, text

    check()


# emit_torch bug (reported to the owner, not fixed here): external weights are not cast to the
# input dtype (internal weights are: `self.<w>_weight.to(dtype)`), so an SU2 (complex) module with
# real external weights crashes in einsum as soon as a weight/CG contraction sums over paths.
SU2_EXTERNAL = """group SU2
diagram D {
    in a : 0
    in b : 0 + 0
    out c : 0
    c = fuse(a, b) [weights=uvu, external]
}
"""


def test_su2_external_fuse_weights():
    program = compile_source(SU2_EXTERNAL)
    assert module_vs_reference(program, "D", batch=3, seed=0) <= TOL
