"""verify_ir, the IR's spec check: every example passes it, each kind of corruption is named, and debug mode
(FUSIONLANG_DEBUG=1, set for the whole test session by conftest.py) runs it between the passes."""
from __future__ import annotations

from pathlib import Path

import pytest

from fusionlang import InternalError, analyze_file
from fusionlang.backend.plan import plan_diagram
from fusionlang.ir import debug_verify, verify_ir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "diagrams").glob("*.fus"))


def diagrams():
    for path in EXAMPLES:
        analysis = analyze_file(path)
        assert analysis.ok, path
        yield from analysis.diagrams


def test_every_example_meets_the_spec():
    checked = list(diagrams())
    assert len(checked) > 10
    for d in checked:
        verify_ir(d)
    graph = [d for d in checked if d.is_graph and not d.is_closed]
    assert graph, "the examples include graph diagrams"
    for d in graph:                          # the planner's rewrites (rebuild) keep the spec
        verify_ir(plan_diagram(d).emitted)


def an_open_diagram():
    return next(d for d in diagrams() if not d.is_closed and len(d.vertices()) >= 2)


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.graph.remove_edge(*next(iter(d.graph.in_edges(d.vertices()[-1][0], keys=True)))), "has no edge"),
    (lambda d: d.vertices()[0][1].__setitem__("index", 7), "indices are not 0..n-1"),
    (lambda d: d.vertices()[0][1]["inputs"].append("nowhere"), "unknown wires ['nowhere']"),
    (lambda d: setattr(d.wires[d.vertices()[0][1]["outputs"][0]], "producer", None), "read but never produced"),
    (lambda d: d.graph.graph.pop("group"), "`group` is missing"),
    (lambda d: d.graph.add_edge(d.vertices()[-1][0], d.vertices()[0][0], key="x@9", wire="x", dst_port=9),
     "ports it does not have"),
])
def test_each_corruption_is_named(corrupt, message):
    d = an_open_diagram()
    verify_ir(d)
    corrupt(d)
    with pytest.raises(InternalError, match="breaks the IR spec") as info:
        verify_ir(d)
    assert message in str(info.value)


def test_debug_mode_runs_it_between_passes(monkeypatch):
    d = an_open_diagram()
    d.vertices()[0][1]["index"] = 7
    monkeypatch.setenv("FUSIONLANG_DEBUG", "1")
    with pytest.raises(InternalError, match="after check: .*indices"):
        plan_diagram(d)
    monkeypatch.setenv("FUSIONLANG_DEBUG", "0")
    debug_verify([d], "check")               # off: no check, no error


def test_typed_vertices_carry_what_the_stages_read():
    from fusionlang.ir import weight_mode
    from fusionlang.symmetry.paths import vertex_wiring
    seen = set()
    for d in diagrams():
        for (node, data), v in zip(d.vertices(), d.typed_vertices()):
            assert (v.node, v.kind, v.index) == (node, data["kind"], data["index"])
            assert v.inputs == tuple(data["inputs"]) and v.outputs == tuple(data["outputs"])
            assert v.in_irreps == tuple(d.irreps(w) for w in data["inputs"]) and v.group is d.group
            assert v.mode == weight_mode(data, d) and v.external == bool(data.get("external"))
            if v.kind not in ("gather", "scatter"):
                paths, outs = vertex_wiring(d.group, data, list(v.in_irreps), list(v.out_irreps))
                assert list(v.paths) == paths and list(v.path_out_irreps) == list(outs)
            assert d.vertex(node) is v and v.paths is v.paths       # made once, paths computed once
            seen.add(v.mode)
    assert {"uvw", "uvu", "none", "linear"} <= seen


def test_weight_layout_is_the_planners():
    from fusionlang.backend.plan import plan_diagram
    for d in diagrams():
        if d.is_closed or d.is_graph:
            continue
        plan = plan_diagram(d)
        for vp in plan.vertices:
            v = d.vertex(vp.node)
            if not v.symmetric:
                assert list(v.weight_shapes) == list(vp.weight_shapes) and v.weight_numel == vp.weight_numel
