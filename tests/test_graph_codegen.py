"""Compiled graph diagrams (LANGUAGE.md section 9) against an independent dense reference.

The reference here is written with e3nn (o3.TensorProduct, o3.Linear) and index_add_, not
through fusionlang: h[sender] read on the edges, the edge tensor product, the sum into the
receivers.  Graphs include E = 0, isolated nodes, self-loops, repeated edges and a single node.
Also: bad edge_index, torch.compile over several graph sizes without recompiling, torch.export
with dynamic E and V, gradients and double backward, float32, and equivariance of a whole graph
built from atom positions under rotations and inversion.
"""
from __future__ import annotations

import pytest
import torch

from fusionlang.api import compile_analysis, compile_source
from fusionlang.frontend import analyze
from fusionlang.verify import equivariance_error

from helpers_codegen import float64_default  # noqa: F401 (an autouse fixture)

o3 = pytest.importorskip("e3nn.o3")

# The MACE / NequIP interaction: gather, an edge fuse with external (radial) weights, scatter.
INTERACTION = """group O3
diagram Interaction {
    in  h : 4x(0e + 1o) per node
    in  y : sh(2) per edge
    out a : 4x(0e + 1o + 2e) per node
    wire hs : 4x(0e + 1o) = gather(h, sender)
    wire m  : 4x(0e + 1o + 2e) = fuse(hs, y) [weights=uvu, external]
    a = scatter(m, receiver)
}
"""

# A convolution with shared weights everywhere: the planner runs the first linear on the nodes
# before the gather, transposes its result there and adds the fuse's results straight into the
# nodes (see test_planner_rewrites).
CONVOLUTION = """group O3
diagram Convolution {
    in  h : 24x0e + 24x1o per node
    in  y : sh(2) per edge
    out a : 12x0e + 12x1o per node
    wire hs : 24x0e + 24x1o = gather(h, receiver)
    wire t  : 32x0e + 32x1o = linear(hs)
    wire m  : 32x0e + 32x1o + 32x2e = fuse(t, y) [weights=uvw]
    wire s  : 32x0e + 32x1o + 32x2e = scatter(m, receiver)
    a = linear(s)
}
"""

# A linear on the edges after an external-weight fuse (moved after the scatter), an edge output
# that is also scattered (so the scatter cannot be folded into its producer), sender sums.
MIXED = """group O3
diagram Mixed {
    in  h : 8x(0e + 1o) per node
    in  y : sh(1) per edge
    out e : 8x(0e + 1o) per edge
    out n : 8x(0e + 1o) per node
    out b : 8x(0e + 1o + 1e) per node
    wire hs : 8x(0e + 1o) = gather(h, sender)
    wire m  : 8x(0e + 1o + 1e) = fuse(hs, y) [weights=uvu, external]
    wire t  : 8x(0e + 1o + 1e) = linear(m)
    b = scatter(t, receiver)
    e = fuse(hs, y) [weights=uvu]
    n = scatter(e, sender)
}
"""

# Edge features with channels, widened by uvw: the weights are applied after the sum, on the nodes.
EDGE_FEATURES = """group O3
diagram EdgeFeatures {
    in  h : 8x(0e + 1o) per node
    in  f : 8x(0e + 1o) per edge
    out a : 64x(0e + 1o) per node
    wire hs : 8x(0e + 1o) = gather(h, sender)
    wire m  : 64x(0e + 1o) = fuse(hs, f) [weights=uvw]
    a = scatter(m, receiver)
}
"""

# No node input: V comes from num_nodes.
EDGES_ONLY = """group O3
diagram EdgesOnly {
    in  y : sh(2) per edge
    in  w : 4x0e per edge
    out n : 4x(0e + 1o + 2e) per node
    wire m : 4x(0e + 1o + 2e) = fuse(w, y) [weights=uvu]
    n = scatter(m, sender)
}
"""

SOURCES = {"Interaction": INTERACTION, "Convolution": CONVOLUTION, "Mixed": MIXED, "EdgesOnly": EDGES_ONLY,
           "EdgeFeatures": EDGE_FEATURES}


def _program(name, cache={}):
    if name not in cache:
        cache[name] = compile_source(SOURCES[name])
    return cache[name]


def graph(case: str, gen: torch.Generator) -> tuple[int, torch.Tensor]:
    """(V, edge_index) for a named kind of graph."""
    if case == "random":
        return 6, torch.randint(0, 6, (2, 15), generator=gen)
    if case == "no_edges":
        return 4, torch.zeros(2, 0, dtype=torch.long)
    if case == "isolated_nodes":          # nodes 3..9 have no edge at all
        return 10, torch.randint(0, 3, (2, 8), generator=gen)
    if case == "self_loops":
        return 3, torch.tensor([[0, 1, 2, 2], [0, 1, 2, 2]])
    if case == "repeated_edges":
        return 5, torch.tensor([[1, 1, 1, 1, 4, 0], [3, 3, 3, 3, 0, 4]])
    if case == "one_node":
        return 1, torch.zeros(2, 3, dtype=torch.long)
    raise KeyError(case)


GRAPHS = ["random", "no_edges", "isolated_nodes", "self_loops", "repeated_edges", "one_node"]


def sh_irreps(l):
    return o3.Irreps(" + ".join(f"{k}{'eo'[k % 2]}" for k in range(l + 1)))


def e3nn_tp(in1, in2, out, mode, external):
    a, b, c = o3.Irreps(in1), o3.Irreps(in2), o3.Irreps(out)
    ins = [(i, j, k, mode, True) for i, (_, x) in enumerate(a) for j, (_, y) in enumerate(b)
           for k, (_, z) in enumerate(c) if z in x * y]
    return o3.TensorProduct(a, b, c, ins, irrep_normalization="component", path_normalization="element",
                            internal_weights=not external, shared_weights=not external).double()


def scatter_sum(values, index, num_nodes):
    return torch.zeros(num_nodes, values.shape[1], dtype=values.dtype).index_add_(0, index, values)


def e3nn_reference(name, module, V, edge_index, args):
    """The diagram's meaning, written out with e3nn and index_add_, given the module's own weights."""
    send, recv = edge_index
    p = dict(module.named_parameters())

    def tp(in1, in2, out, mode, external, weight_name=None):
        t = e3nn_tp(in1, in2, out, mode, external)
        if not external:
            with torch.no_grad():
                t.weight.copy_(p[weight_name])
        return t

    def linear(src, dst, weight_name):
        lin = o3.Linear(src, dst).double()
        with torch.no_grad():
            lin.weight.copy_(p[weight_name])
        return lin

    if name == "Interaction":
        h, y, w = args
        m = tp("4x0e+4x1o", sh_irreps(2), "4x0e+4x1o+4x2e", "uvu", True)(h[send], y, w)
        return (scatter_sum(m, recv, V),)
    if name == "Convolution":
        h, y = args
        t = linear("24x0e+24x1o", "32x0e+32x1o", "t_weight")(h[recv])
        m = tp("32x0e+32x1o", sh_irreps(2), "32x0e+32x1o+32x2e", "uvw", False, "m_weight")(t, y)
        return (linear("32x0e+32x1o+32x2e", "12x0e+12x1o", "a_weight")(scatter_sum(m, recv, V)),)
    if name == "Mixed":
        h, y, w = args
        hs = h[send]
        m = tp("8x0e+8x1o", sh_irreps(1), "8x0e+8x1o+8x1e", "uvu", True)(hs, y, w)
        t = linear("8x0e+8x1o+8x1e", "8x0e+8x1o+8x1e", "t_weight")(m)
        e = tp("8x0e+8x1o", sh_irreps(1), "8x0e+8x1o", "uvu", False, "e_weight")(hs, y)
        return e, scatter_sum(e, send, V), scatter_sum(t, recv, V)
    if name == "EdgeFeatures":
        h, f = args
        m = tp("8x0e+8x1o", "8x0e+8x1o", "64x0e+64x1o", "uvw", False, "m_weight")(h[send], f)
        return (scatter_sum(m, recv, V),)
    if name == "EdgesOnly":
        y, w = args
        m = tp("4x0e", sh_irreps(2), "4x0e+4x1o+4x2e", "uvu", False, "m_weight")(w, y)
        return (scatter_sum(m, send, V),)
    raise KeyError(name)


def make_args(name, program, V, edge_index, gen, dtype=torch.float64):
    plan = program.plans[name]
    d = plan.diagram
    E = edge_index.shape[1]
    rows = {"node": V, "edge": E}
    args = [torch.randn(rows[d.domain(w)], d.irreps(w).dim, generator=gen, dtype=dtype) for w in d.inputs]
    args += [torch.randn(rows[v.domain], v.weight_numel, generator=gen, dtype=dtype)
             for v in plan.vertices if v.external and v.weight_numel]
    return args


def run(module, name, args, edge_index, V):
    kwargs = {"num_nodes": V} if name == "EdgesOnly" else {}
    out = module(*args, edge_index, **kwargs)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("case", GRAPHS)
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_matches_e3nn_and_index_add(name, case):
    gen = torch.Generator().manual_seed(hash((name, case)) % 2**31)
    program = _program(name)
    torch.manual_seed(1)
    module = program.modules[name]().double()
    V, edge_index = graph(case, gen)
    args = make_args(name, program, V, edge_index, gen)
    with torch.no_grad():
        got = run(module, name, args, edge_index, V)
        expected = e3nn_reference(name, module, V, edge_index, args)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        scale = max(float(e.abs().max()) if e.numel() else 0.0, 1.0)
        assert float((g - e).abs().max() if e.numel() else 0.0) / scale < 1e-10, (name, case)
    if case == "isolated_nodes" and name in ("Interaction", "Convolution"):
        assert torch.all(got[0][3:] == 0)          # a node with no edge gets zeros


def test_int32_edge_index():
    program = _program("Interaction")
    module = program.modules["Interaction"]().double()
    gen = torch.Generator().manual_seed(0)
    V, edge_index = graph("random", gen)
    args = make_args("Interaction", program, V, edge_index, gen)
    with torch.no_grad():
        assert torch.equal(module(*args, edge_index.int()), module(*args, edge_index))


# ----------------------------------------------------------------------------- the planner


def test_planner_rewrites():
    """The planner sees the whole block: each diagram takes the rewrites the cost model favours, and
    the rewritten module computes what the diagram planned vertex by vertex computes."""
    conv = _program("Convolution").plans["Convolution"]
    notes = " | ".join(conv.rewrites)
    assert "`t = linear(hs)` runs on the nodes before `gather(h, receiver)`" in notes
    assert "`t = gather(t_node, receiver)` is done term by term" in notes
    fuse = next(v for v in conv.vertices if v.kind == "fuse")
    assert fuse.scatter_into == "s" and fuse.gathered_from == "t_node" and not fuse.weights_on_nodes
    assert [v.kind for v in conv.vertices] == ["linear", "gather", "fuse", "scatter", "linear"]
    assert conv.vertices[0].domain == "node" and conv.vertices[1].absorbed and conv.vertices[3].absorbed
    features = _program("EdgeFeatures").plans["EdgeFeatures"]
    assert any("shared weights of `m` are applied after the sum" in r for r in features.rewrites)
    assert next(v for v in features.vertices if v.kind == "fuse").weights_on_nodes
    inter = _program("Interaction").plans["Interaction"]
    assert next(v for v in inter.vertices if v.kind == "fuse").scatter_into == "a"
    mixed = _program("Mixed").plans["Mixed"]
    assert any("`t = linear(m)` runs on the nodes after" in r for r in mixed.rewrites)
    # `e` is an output, so its scatter stays a scatter
    assert not next(v for v in mixed.vertices if v.outputs == ["n"]).absorbed
    for name in SOURCES:
        a = analyze(SOURCES[name])
        written = compile_analysis(a, graph_rewrites=False)
        assert not written.plans[name].rewrites
        rewritten = _program(name)
        gen = torch.Generator().manual_seed(5)
        V, edge_index = graph("random", gen)
        args = make_args(name, rewritten, V, edge_index, gen)
        torch.manual_seed(3)
        m1 = rewritten.modules[name]().double()
        m2 = written.modules[name]().double()
        with torch.no_grad():       # the same weights (the constant buffers differ between plans)
            for (n1, p1), (n2, p2) in zip(m1.named_parameters(), m2.named_parameters()):
                assert n1 == n2
                p2.copy_(p1)
        with torch.no_grad():
            for x, y in zip(run(m1, name, args, edge_index, V), run(m2, name, args, edge_index, V)):
                torch.testing.assert_close(x, y, rtol=1e-11, atol=1e-11)


def test_gathered_output_wire_is_kept():
    """A gathered wire that is also an output is still produced when its linear moves to the nodes."""
    text = """group O3
diagram Keep {
    in  h : 32x0e + 32x1o per node
    out hs : 32x0e + 32x1o per edge
    out t : 8x0e + 8x1o per edge
    hs = gather(h, sender)
    t = linear(hs)
}
"""
    program = compile_source(text)
    plan = program.plans["Keep"]
    assert any("runs on the nodes before" in r for r in plan.rewrites)
    module = program.modules["Keep"]().double()
    gen = torch.Generator().manual_seed(0)
    V, edge_index = graph("repeated_edges", gen)
    h = torch.randn(V, 128, generator=gen, dtype=torch.float64)
    hs, t = module(h, edge_index)
    torch.testing.assert_close(hs, h[edge_index[0]], rtol=0, atol=0)
    lin = o3.Linear("32x0e+32x1o", "8x0e+8x1o").double()
    with torch.no_grad():
        lin.weight.copy_(module.t_weight)
        torch.testing.assert_close(t, lin(h[edge_index[0]]), rtol=1e-12, atol=1e-12)


def test_rewrites_lower_the_modelled_cost():
    for name in SOURCES:
        a = analyze(SOURCES[name])
        written = compile_analysis(a, graph_rewrites=False).plans[name]
        chosen = _program(name).plans[name]
        assert chosen.cost <= written.cost
    conv_written = compile_analysis(analyze(CONVOLUTION), graph_rewrites=False).plans["Convolution"]
    assert _program("Convolution").plans["Convolution"].cost < 0.85 * conv_written.cost


def test_edge_message_not_assembled():
    """With the scatter folded in, no [E, dim] message tensor is built: nothing in forward has
    the message's width on E rows (the accumulators are added into the nodes as they are)."""
    source = _program("Interaction").python
    forward = source.split("def forward")[1]
    assert "torch.cat" not in forward.split("_scatter_add")[0]
    assert "_scatter_add(m_acc" in forward


# ----------------------------------------------------------------------------- bad input


def _interaction_call():
    program = _program("Interaction")
    module = program.modules["Interaction"]().double()
    gen = torch.Generator().manual_seed(0)
    V, edge_index = graph("random", gen)
    return module, make_args("Interaction", program, V, edge_index, gen), edge_index, V


@pytest.mark.parametrize("bad,error,words", [
    (lambda e: e[0], ValueError, "edge_index must be a [2, E] tensor"),
    (lambda e: torch.cat([e, e[:1]]), ValueError, "edge_index must be a [2, E] tensor"),
    (lambda e: e[:, :, None], ValueError, "edge_index must be a [2, E] tensor"),
    (lambda e: e.double(), TypeError, "edge_index must hold integers"),
    (lambda e: e.tolist(), ValueError, "edge_index must be a [2, E] tensor"),
    (lambda e: torch.cat([e, torch.tensor([[0], [6]])], 1), IndexError, "edge_index names node 6"),
    (lambda e: torch.cat([e, torch.tensor([[-1], [0]])], 1), IndexError, "edge_index names node -1"),
])
def test_bad_edge_index_is_named(bad, error, words):
    module, args, edge_index, V = _interaction_call()
    with pytest.raises(error) as info:
        module(*args, bad(edge_index))
    assert words in str(info.value)
    if error is IndexError:
        assert f"V = {V}" in str(info.value)


def test_wrong_row_counts_are_named():
    module, (h, y, w), edge_index, V = _interaction_call()
    with pytest.raises(ValueError, match=r"h is per node: expected a \[V = 6, 16\] tensor"):
        module(h[:, :5], y, w, edge_index)
    with pytest.raises(ValueError, match=r"y is per edge: expected a \[E = 15, 9\] tensor, got \[14, 9\]"):
        module(h, y[:-1], w, edge_index)
    with pytest.raises(ValueError, match=r"m_weights is per edge"):
        module(h, y, w[:3], edge_index)


def test_num_nodes_keyword():
    program = _program("EdgesOnly")
    module = program.modules["EdgesOnly"]().double()
    import inspect
    params = inspect.signature(module.forward).parameters
    assert list(params) == ["y", "w", "edge_index", "num_nodes"]
    assert params["num_nodes"].kind is inspect.Parameter.KEYWORD_ONLY
    gen = torch.Generator().manual_seed(0)
    y, w = torch.randn(3, 9, generator=gen), torch.randn(3, 4, generator=gen)
    edge_index = torch.tensor([[0, 0, 2], [1, 1, 1]])
    assert module(y, w, edge_index, num_nodes=7).shape == (7, 36)
    with pytest.raises(IndexError, match="edge_index names node 2"):
        module(y, w, edge_index, num_nodes=2)


# ----------------------------------------------------------------------------- torch.compile / export


def test_torch_compile_dynamic_sizes_without_recompiling():
    from torch._dynamo.utils import counters
    program = _program("Interaction")
    torch.manual_seed(0)
    module = program.modules["Interaction"]().double()
    torch._dynamo.reset()
    counters.clear()
    # aot_eager: the whole forward through dynamo and AOTAutograd without a C++ toolchain.
    compiled = torch.compile(module, fullgraph=True, dynamic=True, backend="aot_eager")
    gen = torch.Generator().manual_seed(2)
    for V, E in [(5, 12), (9, 31), (13, 7), (30, 64), (2, 2)]:
        edge_index = torch.randint(0, V, (2, E), generator=gen)
        args = make_args("Interaction", program, V, edge_index, gen)
        with torch.no_grad():
            torch.testing.assert_close(compiled(*args, edge_index), module(*args, edge_index),
                                       rtol=1e-12, atol=1e-12)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    # E = 0 also runs compiled (dynamo specialises sizes 0 and 1, so it may trace once more).
    edge_index = torch.zeros(2, 0, dtype=torch.long)
    args = make_args("Interaction", program, 4, edge_index, gen)
    with torch.no_grad():
        torch.testing.assert_close(compiled(*args, edge_index), module(*args, edge_index))
    # and gradients through the compiled graph
    V, edge_index = graph("repeated_edges", gen)
    args = make_args("Interaction", program, V, edge_index, gen)
    leaves = [a.clone().requires_grad_(True) for a in args]
    compiled(*leaves, edge_index).pow(2).sum().backward()
    eager = [a.clone().requires_grad_(True) for a in args]
    module(*eager, edge_index).pow(2).sum().backward()
    for a, b in zip(leaves, eager):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["Interaction", "Convolution"])
def test_torch_export_dynamic_nodes_and_edges(name):
    from torch.export import Dim, export
    program = _program(name)
    torch.manual_seed(0)
    module = program.modules[name]().double()
    gen = torch.Generator().manual_seed(4)
    V, edge_index = graph("random", gen)
    args = make_args(name, program, V, edge_index, gen)
    nodes, edges = Dim("V", min=2), Dim("E", min=0)
    d = program.plans[name].diagram
    shapes = [{0: nodes if d.domain(w) == "node" else edges} for w in d.inputs]
    shapes += [{0: edges} for v in program.plans[name].vertices if v.external and v.weight_numel]
    exported = export(module, (*args, edge_index), dynamic_shapes=(*shapes, {1: edges}))
    for case in ("isolated_nodes", "no_edges", "repeated_edges"):
        V2, e2 = graph(case, gen)
        args2 = make_args(name, program, V2, e2, gen)
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(*args2, e2), module(*args2, e2), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- autograd, dtypes

TINY = """group O3
diagram Tiny {
    in  h : 2x(0e + 1o) per node
    in  y : sh(1) per edge
    out a : 3x(0e + 1o) per node
    wire hs : 2x(0e + 1o) = gather(h, sender)
    wire t  : 2x(0e + 1o) = linear(hs)
    wire m  : 2x(0e + 1o + 1e) = fuse(t, y) [weights=uvu, external]
    wire s  : 2x(0e + 1o + 1e) = scatter(m, receiver)
    wire q  : 2x(0e + 1o) = fuse(s, s) [weights=uvw]
    a = linear(q)
}
"""


def test_gradcheck_and_double_backward_every_input_weight_and_parameter():
    program = compile_source(TINY)
    module = program.modules["Tiny"]().double()
    edge_index = torch.tensor([[0, 0, 1, 2, 2], [1, 1, 1, 0, 3]])      # a repeated edge, a self-loop
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(4, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, program.plans["Tiny"].vertices[2].weight_numel, generator=gen, dtype=torch.float64,
                    requires_grad=True)
    names = [n for n, _ in module.named_parameters()]
    assert len(names) == 3
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]

    def f(h, y, w, *params):
        return torch.func.functional_call(module, dict(zip(names, params)), (h, y, w, edge_index))

    assert torch.autograd.gradcheck(f, (h, y, w, *params))
    assert torch.autograd.gradgradcheck(f, (h, y, w, *params))


def test_forces_style_double_backward():
    """E = sum of the scalar outputs; F = -dE/dy with create_graph; a loss on F trains every weight."""
    program = _program("Convolution")
    module = program.modules["Convolution"]().double()
    gen = torch.Generator().manual_seed(0)
    V, edge_index = graph("random", gen)
    h, y = make_args("Convolution", program, V, edge_index, gen)
    y.requires_grad_(True)
    energy = module(h, y, edge_index)[:, :12].sum()
    (forces,) = torch.autograd.grad(energy, y, create_graph=True)
    (forces ** 2).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_float32_close_to_float64(name):
    program = _program(name)
    torch.manual_seed(0)
    module = program.modules[name]()
    gen = torch.Generator().manual_seed(1)
    V, edge_index = graph("repeated_edges", gen)
    args = make_args(name, program, V, edge_index, gen)
    with torch.no_grad():
        out32 = run(module.float(), name, [a.float() for a in args], edge_index, V)
        out64 = run(module.double(), name, args, edge_index, V)
    for a, b in zip(out32, out64):
        assert a.dtype == torch.float32
        assert float((a.double() - b).abs().max() / b.abs().max().clamp_min(1.0)) < 1e-5


# ----------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_verify_equivariance(name):
    program = _program(name)
    plan = program.plans[name]
    assert equivariance_error(program.modules[name](), plan.diagram, plan) < 1e-10


@pytest.mark.parametrize("inversion", [False, True])
def test_whole_graph_from_positions_rotates(inversion):
    """Atoms at random positions, edges within a cutoff, y the spherical harmonics of the edge
    vectors: rotating (and inverting) every position rotates the output as its irreps say."""
    program = _program("Convolution")
    torch.manual_seed(0)
    module = program.modules["Convolution"]().double()
    gen = torch.Generator().manual_seed(7)
    pos = torch.randn(12, 3, generator=gen, dtype=torch.float64) * 1.5
    dist = (pos[:, None] - pos[None]).norm(dim=-1)
    sender, receiver = torch.nonzero((dist < 2.0) & (dist > 0), as_tuple=True)
    edge_index = torch.stack([sender, receiver])
    h = torch.randn(12, 96, generator=gen, dtype=torch.float64)

    def forward(pos, h):
        vec = pos[edge_index[1]] - pos[edge_index[0]]
        y = o3.spherical_harmonics(sh_irreps(2), vec, normalize=True, normalization="component")
        return module(h, y, edge_index)

    torch.manual_seed(11)
    R = o3.rand_matrix(dtype=torch.float64)
    if inversion:
        R = -R
    D_in = o3.Irreps("24x0e + 24x1o").D_from_matrix(R)
    D_out = o3.Irreps("12x0e + 12x1o").D_from_matrix(R)
    with torch.no_grad():
        rotated = forward(pos @ R.T, h @ D_in.T)
        expected = forward(pos, h) @ D_out.T
    assert edge_index.shape[1] > 12
    assert float((rotated - expected).abs().max() / expected.abs().max()) < 1e-10
