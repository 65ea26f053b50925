"""Hypothesis-generated small graph diagrams, compiled and compared with reference.py on random
graphs (E = 0, isolated nodes, self-loops and repeated edges included), and checked for
equivariance.  The diagrams are built to pass the checker (a test asserts it): gather, an optional
linear on the edges, an edge fuse, an optional linear, a scatter, an optional linear on the nodes;
sometimes the edge message is an output too.  Each exercises the planner's rewrites where its
cost model takes them, so the rewritten modules are checked against the diagram as written.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusionlang.api import compile_source
from fusionlang.backend.emit_torch import forward_argument_names
from fusionlang.verify import equivariance_error

from helpers_codegen import float64_default, reference_outputs, relative_error  # noqa: F401

SETTINGS = dict(derandomize=True, deadline=None, database=None, max_examples=30,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

LABELS = ["0e", "1o", "1e", "2e"]


def parity(label):
    return 1 if label[-1] == "e" else -1


def products(a, b):
    la, lb = int(a[:-1]), int(b[:-1])
    p = "e" if parity(a) * parity(b) > 0 else "o"
    return {f"{l}{p}" for l in range(abs(la - lb), la + lb + 1)}


def irreps(mul, labels):
    return " + ".join(f"{mul}x{lab}" for lab in labels)


@st.composite
def graph_diagrams(draw):
    u = draw(st.integers(1, 3))
    h_labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):            # spherical harmonics of the edge vectors
        lmax = draw(st.integers(0, 2))
        y_labels, v = [f"{l}{'eo'[l % 2]}" for l in range(lmax + 1)], 1
        y_type = f"sh({lmax})"
    else:                              # edge features with channels
        y_labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=2, unique=True))
        v = draw(st.integers(2, 3))
        y_type = irreps(v, y_labels)
    gather_end = draw(st.sampled_from(["sender", "receiver"]))
    scatter_end = draw(st.sampled_from(["sender", "receiver"]))
    lines = [f"    in  h : {irreps(u, h_labels)} per node", f"    in  y : {y_type} per edge"]
    body = [f"    wire hs : {irreps(u, h_labels)} = gather(h, {gather_end})"]
    src, mul = "hs", u
    if draw(st.booleans()):            # a linear on the edges, before the fuse
        mul = draw(st.integers(1, 3))
        body.append(f"    wire hl : {irreps(mul, h_labels)} = linear(hs)")
        src = "hl"
    reach = sorted(set().union(*(products(a, b) for a in h_labels for b in y_labels)) & set(LABELS + ["2o", "3o"]))
    out_labels = draw(st.lists(st.sampled_from(reach), min_size=1, max_size=3, unique=True))
    mode = draw(st.sampled_from(["uvu", "uvw", "none"]))
    # uvw may widen a lot (64 channels): then the planner applies the shared weights on the nodes.
    out_mul = draw(st.sampled_from([1, 2, 3, 64])) if mode == "uvw" else mul * v if mode == "none" else mul
    external = mode != "none" and draw(st.booleans())
    option = f" [weights={mode}{', external' if external else ''}]"
    edge_out = draw(st.booleans())
    kind = "out" if edge_out else "wire"
    decl = f"{kind} m : {irreps(out_mul, out_labels)}" + (" per edge" if edge_out else "")
    body.append(f"    {decl}" if edge_out else f"    wire m : {irreps(out_mul, out_labels)} = fuse({src}, y){option}")
    if edge_out:
        body.append(f"    m = fuse({src}, y){option}")
    msg, msg_mul = "m", out_mul
    if draw(st.booleans()):            # a linear on the edges, before the scatter
        msg_mul = draw(st.integers(1, 3))
        body.append(f"    wire ml : {irreps(msg_mul, out_labels)} = linear(m)")
        msg = "ml"
    if draw(st.booleans()):            # a linear on the nodes, after it
        body.append(f"    wire s : {irreps(msg_mul, out_labels)} = scatter({msg}, {scatter_end})")
        final = draw(st.lists(st.sampled_from(out_labels), min_size=1, max_size=len(out_labels), unique=True))
        lines.append(f"    out a : {irreps(draw(st.integers(1, 3)), final)} per node")
        body.append("    a = linear(s)")
    else:
        lines.append(f"    out a : {irreps(msg_mul, out_labels)} per node")
        body.append(f"    a = scatter({msg}, {scatter_end})")
    return "group O3\n\ndiagram G {\n" + "\n".join(lines + body) + "\n}\n"


@st.composite
def graphs(draw):
    V = draw(st.integers(1, 6))
    E = draw(st.integers(0, 10))
    pairs = draw(st.lists(st.tuples(st.integers(0, V - 1), st.integers(0, V - 1)), min_size=E, max_size=E))
    edge_index = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous()
    return V, edge_index


@settings(**SETTINGS)
@given(graph_diagrams(), graphs(), st.integers(0, 2**16))
def test_random_graph_diagram_matches_reference(text, graph, seed):
    program = compile_source(text)       # raises (and fails the test) if the checker rejects it
    plan = program.plans["G"]
    d = plan.diagram
    V, edge_index = graph
    rows = {"node": V, "edge": edge_index.shape[1]}
    gen = torch.Generator().manual_seed(seed)
    names = forward_argument_names(plan)
    args = {n: torch.randn(rows[d.domain(w)], d.irreps(w).dim, generator=gen, dtype=torch.float64)
            for n, w in zip(names, d.inputs)}
    for n, v in zip(names[len(d.inputs):], [v for v in plan.vertices if v.external and v.weight_numel]):
        args[n] = torch.randn(rows[v.domain], v.weight_numel, generator=gen, dtype=torch.float64)
    args["edge_index"] = edge_index
    torch.manual_seed(seed)
    module = program.modules["G"]().double()
    with torch.no_grad():
        out = module(*[args[n] for n in names])
    outs = out if isinstance(out, tuple) else (out,)
    expected = reference_outputs(module, d, plan, args)
    for w, y in zip(d.outputs, outs):
        assert y.shape == (rows[d.domain(w)], d.irreps(w).dim)
        assert relative_error(y.numpy(), expected[w]) <= 1e-10, (text, plan.rewrites)


@settings(**dict(SETTINGS, max_examples=10))
@given(graph_diagrams())
def test_random_graph_diagram_is_equivariant(text):
    program = compile_source(text)
    plan = program.plans["G"]
    assert equivariance_error(program.modules["G"](), plan.diagram, plan, trials=2) < 1e-10


def test_generated_diagrams_use_the_rewrites():
    """The generator reaches the planner's rewrites (else the properties above would not test them)."""
    seen = set()

    @settings(**dict(SETTINGS, max_examples=60))
    @given(graph_diagrams())
    def collect(text):
        plan = compile_source(text).plans["G"]
        for note in plan.rewrites:
            seen.add("before" if "before `gather" in note else "after" if "after `scatter" in note
                     else "weights" if "applied after the sum" in note else "terms" if "term by term" in note
                     else "into")
    collect()
    assert seen == {"before", "after", "weights", "terms", "into"}, seen
